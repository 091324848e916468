pkg {{ cookiecutter.package }}
