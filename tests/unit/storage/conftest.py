from tests.support.db import index, index_url  # noqa: F401  (fixtures)
