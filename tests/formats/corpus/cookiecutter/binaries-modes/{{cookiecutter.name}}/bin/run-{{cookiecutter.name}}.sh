#!/bin/sh
echo "{{ cookiecutter.name }}"
