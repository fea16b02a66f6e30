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

Or, as the test harness runs it, a fork server (`--fork-server SOCKET`): moto's import and its
backends cost about two CPU-seconds a server, more than most tests spend in moto, and a test run
starts a hundred and more servers. The fork server pays that once: it imports moto and builds the
backends the tests speak (empty), then forks a fresh server per connection on its Unix socket.
It returns once the socket listens, the server staying in the background. Each child listens on
a free port of HOST, writes the port as one line on the connection, and lives as long as the
connection stays open (the test's `Moto`, dropped or killed). The server leaves when nobody has
asked for a server for `--idle-exit` seconds.
"""
import argparse
import copy
import io
import json
import logging
import os
import random
import signal
import socket
import threading
import time

from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server, run_simple

parser = argparse.ArgumentParser()
parser.add_argument("-H", "--host", default="127.0.0.1")
parser.add_argument("-p", "--port", type=int, default=5000)
parser.add_argument("--fork-server", metavar="SOCKET", help="fork a fresh server per connection on this Unix socket")
parser.add_argument("--idle-exit", type=float, default=300, help="the fork server leaves after this many idle seconds")
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


# The services the tests speak, built once before any fork (empty: no account holds anything yet).
PRELOADED = ["dynamodb", "dynamodbstreams", "sqs", "events", "scheduler", "secretsmanager", "ssm", "iam", "sts", "moto_api"]


def _serve_child(conn):
    """In a forked child: one fresh server on a free port, for as long as `conn` stays open."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # Fresh ids per server: moto draws them from a generator of its own, forked with the rest.
    random.seed()
    mock_random.seed()
    # Its errors go where the fork server's go (the log the harness names when a server fails).
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    server = make_server(args.host, 0, atomic, threaded=True)
    conn.sendall(f"{server.server_port}\n".encode())

    def watch():
        try:
            while conn.recv(64):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    server.serve_forever()


def fork_server(path):
    for service in PRELOADED:
        app.app_instances[service] = create_backend_app(service)
    assert threading.active_count() == 1, "forking needs a single thread"
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the servers
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    bound = os.stat(path).st_ino
    listener.listen(64)
    listener.settimeout(args.idle_exit)
    # Listening: the process that started it may go on (its child, this server, stays).
    if os.fork() > 0:
        os._exit(0)
    while True:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            break
        conn.settimeout(None)
        if os.fork() == 0:
            listener.close()
            try:
                _serve_child(conn)
            finally:
                os._exit(0)
        conn.close()
    # Leaving: the socket goes first, so that nobody connects to a server about to be gone.
    try:
        if os.stat(path).st_ino == bound:  # not a newer server's socket
            os.unlink(path)
    except OSError:
        pass


if args.fork_server:
    fork_server(args.fork_server)
else:
    run_simple(args.host, args.port, atomic, threaded=True)
