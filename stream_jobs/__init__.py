"""relradar's stream jobs: the composition root of the product.

The faust app (classify and sink agents), the ClickHouse store and sink, the local broker,
the HTTP endpoint, the always-on service and the ``relradar`` CLI live here; this is the only
package that imports the others.
"""

from stream_jobs.app import Counters, create_app
from stream_jobs.sink import ClickHouseSink, SinkBackpressure, SinkError
from stream_jobs.store import Store, StoreError

__all__ = [
    "ClickHouseSink",
    "Counters",
    "SinkBackpressure",
    "SinkError",
    "Store",
    "StoreError",
    "create_app",
]
