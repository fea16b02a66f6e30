"""moto_server, with DynamoDB's atomicity.

Real DynamoDB applies each request, a conditional write included, atomically. moto's server
handles requests on threads with no lock around its tables, so two conditional puts racing for
the same key can both succeed: the idempotency claims this project rests on would look broken
(or, worse, pass by luck). Here every DynamoDB request runs under one lock; everything else stays
threaded (an SQS long poll must not hold up the rest).

    python moto_atomic.py -H 127.0.0.1 -p 5000
"""
import argparse
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

parser = argparse.ArgumentParser()
parser.add_argument("-H", "--host", default="127.0.0.1")
parser.add_argument("-p", "--port", type=int, default=5000)
args = parser.parse_args()

app = DomainDispatcherApplication(create_backend_app)
dynamodb = threading.Lock()


def atomic(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with dynamodb:
            return list(app(environ, start_response))
    return app(environ, start_response)


run_simple(args.host, args.port, atomic, threaded=True)
