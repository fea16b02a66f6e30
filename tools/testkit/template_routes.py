"""The HTTP API routes template.yaml gives the messages API function, as JSON: [[method, path]].

    python template_routes.py template.yaml
"""

import json
import sys

from cfnlint.decode import cfn_yaml

function = cfn_yaml.load(sys.argv[1])["Resources"]["MessagesApiFunction"]["Properties"]
routes = sorted(
    [event["Properties"]["Method"], event["Properties"]["Path"]]
    for event in function.get("Events", {}).values()
    if event.get("Type") == "HttpApi"
)
json.dump(routes, sys.stdout)
