#!/bin/sh
echo static
