#!/bin/sh
set -e
printf 'made by sh for %s\n' "{{ cookiecutter.name }}" > from-shell.txt
mkdir -p nested/dir
printf 'nested\n' > nested/dir/file.txt
