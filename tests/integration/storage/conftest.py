from tests.support.db import index, index_url  # noqa: F401  (fixtures)
from tests.support.s3 import s3  # noqa: F401
