"""moto_server, with DynamoDB's atomicity.

Real DynamoDB applies each request, a conditional write included, atomically. moto's server
handles requests on threads with no lock around its tables, so two conditional puts racing for
the same key can both succeed: the idempotency claims this project rests on would look broken
(or, worse, pass by luck). Here every DynamoDB request runs under one lock, once its body is read
(a client stalled mid-request must not hold the lock); everything else stays threaded (an SQS
long poll must not hold up the rest). And two of moto's walks over a whole table or queue per
call are cut to what the call touches (below), so a thousand messages stay fast. Its IAM
enforcement, off until a test turns it on, judges resources and conditions (`moto_iam.py`).

    python moto_atomic.py -H 127.0.0.1 -p 5000
"""
import argparse
import copy
import io
import json
import logging
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

parser = argparse.ArgumentParser()
parser.add_argument("-H", "--host", default="127.0.0.1")
parser.add_argument("-p", "--port", type=int, default=5000)
args = parser.parse_args()

app = DomainDispatcherApplication(create_backend_app)

# IAM enforcement (off until a test turns it on) that judges resources and conditions as AWS
# does: moto_iam.py says how.
import moto_iam  # noqa: E402,F401

# moto's TransactWriteItems deep-copies every table it touches, whole, for its rollback: each
# transaction costs the size of the table (and of its stream), and a thousand messages make
# moto grind (seconds a call, gigabytes). Here a transaction saves only what it can change, the
# items it names and the length of their tables' streams, and a rollback puts those back. Safe
# because every DynamoDB request runs under the lock below.
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

_transact_write_items = DynamoDBBackend.transact_write_items


def _named_items(backend, transact_items):
    for entry in transact_items[:100]:
        try:
            (op,) = entry.values()
            table = backend.tables[op["TableName"]]
            if "Item" in op:
                names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
                key = {name: op["Item"][name] for name in names}
            else:
                key = op["Key"]
            hash_key, range_key = backend.get_keys_value(table, key)
            current = table.get_item(hash_key, range_key)
        except Exception:
            continue  # malformed: moto's own checks name the error
        yield table, hash_key, range_key, copy.deepcopy(current)


def _restore(table, hash_key, range_key, item):
    if item is None:
        if range_key is not None:
            table.items.get(hash_key, {}).pop(range_key, None)
        else:
            table.items.pop(hash_key, None)
    elif range_key is not None:
        table.items[hash_key][range_key] = item
    else:
        table.items[hash_key] = item


def transact_write_items(self, transact_items):
    saved = list(_named_items(self, transact_items))
    streams = {}
    for table, _, _, _ in saved:
        if table.stream_shard is not None:
            streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
    Table.__deepcopy__ = lambda table, memo: table  # moto's own backup: a no-op
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(saved):
            _restore(table, hash_key, range_key, item)
        for shard, length in streams.values():
            del shard.items[length:]
        raise
    finally:
        del Table.__deepcopy__


DynamoDBBackend.transact_write_items = transact_write_items
# And moto's ReceiveMessage checks each message's retention through GetQueueAttributes, which
# computes every attribute, the queue's depths included, three times: each message received
# costs a walk of the whole queue, and a backlog of a thousand makes receiving quadratic. The
# check reads the one attribute it needs.
from moto.core.utils import unix_time
from moto.sqs.models import SQSBackend


def _retained(self, queue_name, message):
    period = self.get_queue(queue_name).message_retention_period
    return period + message.sent_timestamp / 1000 > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _retained

# One log line per request is a tenth of moto's time under load; errors still show.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

dynamodb = threading.Lock()

# Where moto's time goes: requests and seconds by operation (the X-Amz-Target, or the query
# protocol's Action), served as JSON at GET /_testkit/load, so a test can say what loaded it.
load_lock = threading.Lock()
load = {}


def _operation(environ):
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target
    query = environ.get("QUERY_STRING", "")
    for part in query.split("&"):
        if part.startswith("Action="):
            return part[len("Action="):]
    return f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO', '')[:40]}"


def _count(operation, seconds):
    with load_lock:
        entry = load.setdefault(operation, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds


def atomic(environ, start_response):
    if environ.get("PATH_INFO") == "/_testkit/load":
        with load_lock:
            body = json.dumps({op: {"requests": n, "seconds": round(t, 3)} for op, (n, t) in load.items()})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body.encode()]
    operation = _operation(environ)
    started = time.monotonic()
    try:
        if operation.startswith("DynamoDB_"):
            # The body is read before the lock is taken: a client that stalls mid-request (a
            # cut network) holds up its own request, never every other DynamoDB call.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))
            with dynamodb:
                return list(app(environ, start_response))
        return list(app(environ, start_response))
    finally:
        _count(operation, time.monotonic() - started)


run_simple(args.host, args.port, atomic, threaded=True)
