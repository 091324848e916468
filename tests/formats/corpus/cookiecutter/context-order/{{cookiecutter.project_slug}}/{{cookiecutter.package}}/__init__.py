"""{{ cookiecutter.description }}"""

__version__ = "{{ cookiecutter.version }}"
YEAR = {{ cookiecutter.year }}
RATIO = {{ cookiecutter.ratio }}
NOTHING = {{ cookiecutter.nothing }}
