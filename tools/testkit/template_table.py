"""template.yaml's state table as DescribeTable would describe it, as JSON, in a shape a test can
compare with what the stack creates: key schema, attribute definitions, indexes (keys and
projection), billing mode, the stream's view (events on) and the TTL attribute.

    python template_table.py template.yaml
"""

import json
import sys

from cfnlint.decode import cfn_yaml

table = cfn_yaml.load(sys.argv[1])["Resources"]["StateTable"]["Properties"]


def keys(schema):
    return [[key["AttributeName"], key["KeyType"]] for key in schema]


stream = table.get("StreamSpecification", {})
if "Fn::If" in stream:
    # [condition, with events, without]: the stack runs with events on.
    stream = stream["Fn::If"][1]
json.dump(
    {
        "key_schema": keys(table["KeySchema"]),
        "attributes": sorted(
            [a["AttributeName"], a["AttributeType"]] for a in table["AttributeDefinitions"]
        ),
        "indexes": sorted(
            [index["IndexName"], keys(index["KeySchema"]), index["Projection"]["ProjectionType"]]
            for index in table.get("GlobalSecondaryIndexes", [])
        ),
        "billing_mode": table.get("BillingMode", "PROVISIONED"),
        "stream_view": stream.get("StreamViewType"),
        "ttl_attribute": table["TimeToLiveSpecification"]["AttributeName"]
        if table.get("TimeToLiveSpecification", {}).get("Enabled")
        else None,
    },
    sys.stdout,
    indent=1,
)
