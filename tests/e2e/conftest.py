from tests.integration.conftest import sandbox  # noqa: F401 - the shared session fixture
