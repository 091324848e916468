import sys

print("post hook refuses {{ cookiecutter.name }}")
sys.exit(3)
