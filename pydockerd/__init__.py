"""pydockerd helpers for users: a private daemon (``pydockerd.private``) and a pytest plugin
(``pytest -p pydockerd.pytest_plugin``)."""
