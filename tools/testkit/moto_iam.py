"""moto's IAM enforcement, made to judge the policies this project's template writes.

With enforcement on (`POST /moto-api/reset-auth` with `0`), moto checks every request's action
against the caller's policies, but out of the box: DynamoDB, Secrets Manager and EventBridge
requests are judged against the resource `*` (so a policy naming the table, the secret or the
bus is never satisfied), `TransactWriteItems` is judged as an action of its own (AWS authorizes
each item's Put/Update/Delete/ConditionCheck), and conditions other than `StringEquals` are
ignored (so `dynamodb:LeadingKeys` would hold for any key). Here:

| request | judged as |
|---|---|
| a DynamoDB item request | its action on the table's ARN, with `dynamodb:LeadingKeys` = the item's `pk` |
| `TransactWriteItems` | each item's own action (`PutItem`, `UpdateItem`, ...) on its table, with its `pk` |
| `BatchGetItem`, `BatchWriteItem` | its action on each table, with `dynamodb:LeadingKeys` = every `pk` asked of it |
| `Query` | its action on the table's ARN (the index's, `.../index/NAME`, for an index), with `dynamodb:LeadingKeys` = the partition key's value in the key condition |
| other DynamoDB requests | their action on the table (or stream) they name |
| Secrets Manager | its action on the `SecretId` (the ARN the functions are configured with) |
| EventBridge `PutEvents` | `events:PutEvents` on each entry's bus |
| EventBridge Scheduler on `/schedules/{name}` | its action on the schedule's ARN (`schedule/{group}/{name}`) |
| everything else | as moto judges it |

and a request's signature is checked over the body it was sent with (moto checks a body-less
request over its parsed query string, which no client signs).

and statements are judged as AWS does: an Allow whose condition does not hold does not apply
(it is not a Deny); `StringEquals`, `StringLike`, `ForAllValues:StringLike` and
`ForAnyValue:StringLike` are evaluated (a condition operator not known here fails closed).
"""
import fnmatch
import json

from moto.iam import access_control
from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult

ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _leading_keys(spec):
    key = spec.get("Key") or spec.get("Item") or {}
    pk = key.get("pk", {}).get("S")
    return {"dynamodb:LeadingKeys": [pk]} if pk is not None else {}


def _requests(request, resource):
    """(action, resource, condition values) for each authorization the request needs."""
    try:
        body = json.loads(request._body or b"{}")
    except (ValueError, TypeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    region, account = request._region, request.account_id
    service, _, name = request._action.partition(":")

    def table(table_name):
        return f"arn:aws:dynamodb:{region}:{account}:table/{table_name}"

    if service == "dynamodb":
        if name in ("TransactWriteItems", "TransactGetItems"):
            for entry in body.get("TransactItems", []):
                ((operation, spec),) = entry.items()
                action = ITEM_ACTIONS.get(operation, "GetItem")
                yield f"dynamodb:{action}", table(spec.get("TableName", "")), _leading_keys(spec)
            return
        if name in ("BatchGetItem", "BatchWriteItem"):
            for table_name, spec in body.get("RequestItems", {}).items():
                if name == "BatchGetItem":
                    keys = spec.get("Keys", [])
                else:
                    keys = [next(iter(r.values())).get("Key") or next(iter(r.values())).get("Item") or {} for r in spec]
                pks = [k.get("pk", {}).get("S") for k in keys]
                yield request._action, table(table_name), {"dynamodb:LeadingKeys": [p for p in pks if p is not None]}
            return
        if name == "Query" and "TableName" in body:
            # An index's ARN when it queries one; the leading key is the partition key's value
            # (the first `name = :value` of the key condition).
            resource = table(body["TableName"])
            if body.get("IndexName"):
                resource += f"/index/{body['IndexName']}"
            first = (body.get("KeyConditionExpression") or "").split(" AND ")[0]
            placeholder = first.partition("=")[2].strip()
            value = (body.get("ExpressionAttributeValues") or {}).get(placeholder, {}).get("S")
            yield request._action, resource, {"dynamodb:LeadingKeys": [value]} if value else {}
            return
        if "TableName" in body:
            yield request._action, table(body["TableName"]), _leading_keys(body)
            return
        if "StreamArn" in body:
            yield request._action, body["StreamArn"], {}
            return
    if service == "secretsmanager" and "SecretId" in body:
        yield request._action, body["SecretId"], {}
        return
    if service == "scheduler" and request._path.split("?")[0].startswith("/schedules/"):
        from urllib.parse import parse_qs, unquote, urlparse

        url = urlparse(request._path)
        schedule = unquote(url.path.rsplit("/", 1)[-1])
        query = parse_qs(url.query)
        group = body.get("GroupName") or (query.get("groupName") or [None])[0]
        if group is None and isinstance(request._data, dict):
            group = request._data.get("groupName")
            if isinstance(group, list):
                group = group[0] if group else None
        group = group or "default"
        yield request._action, f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{schedule}", {}
        return
    if service == "events" and name == "PutEvents":
        for entry in body.get("Entries", []):
            bus = entry.get("EventBusName") or "default"
            if not bus.startswith("arn:"):
                bus = f"arn:aws:events:{region}:{account}:event-bus/{bus}"
            yield request._action, bus, {}
        return
    yield request._action, resource, {}


def _condition_holds(operator, expected, actual):
    """One operator of a Condition block, for one key: `actual` is the list of the request's
    values for it (empty when the request has none)."""
    patterns = expected if isinstance(expected, list) else [expected]
    like = lambda value: any(fnmatch.fnmatchcase(value, p) for p in patterns)
    if operator == "ForAllValues:StringLike":
        return all(like(v) for v in actual)
    if operator == "ForAllValues:StringEquals":
        return all(v in patterns for v in actual)
    if operator == "ForAnyValue:StringLike":
        return any(like(v) for v in actual)
    if operator == "StringLike":
        return bool(actual) and all(like(v) for v in actual)
    if operator == "StringEquals":
        return bool(actual) and all(v in patterns for v in actual)
    return False


def _conditions_hold(statement, values):
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, expected, values.get(key, [])):
                return False
    return True


def _judge(policy, action, resource, values):
    result = PermissionResult.NEUTRAL
    statements = IAMPolicy(policy)._policy_json["Statement"]
    for raw in statements if isinstance(statements, list) else [statements]:
        statement = IAMPolicyStatement(raw)
        concerned = (
            not statement._check_element_matches("NotAction", action)
            if "NotAction" in raw
            else statement._check_element_matches("Action", action)
        )
        if not concerned or not statement._check_element_matches("Resource", resource):
            continue
        if not _conditions_hold(raw, values):
            continue
        if raw.get("Effect") == "Deny":
            return PermissionResult.DENIED
        result = PermissionResult.PERMITTED
    return result


def _check_action_permitted(self, resource):
    if self._action == "sts:GetCallerIdentity":
        return
    policies = self._access_key.collect_policies()
    for action, judged_resource, values in _requests(self, resource):
        permitted = False
        for policy in policies:
            result = _judge(policy, action, judged_resource, values)
            if result == PermissionResult.DENIED:
                self._raise_access_denied()
            if result == PermissionResult.PERMITTED:
                permitted = True
        if not permitted:
            self._action = action
            self._raise_access_denied()


access_control.IAMRequestBase.check_action_permitted = _check_action_permitted


def _create_aws_request(self):
    """The request as signed: moto puts the parsed query string in the body of a request that
    has none (a REST `DELETE /schedules/{name}?groupName=...`), so its signature never matches.
    The body as sent, and the query in the URL, are what the client signed."""
    from botocore.awsrequest import AWSRequest

    signed_headers = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
    headers = self._create_headers_for_aws_request(signed_headers, self._headers)
    request = AWSRequest(method=self._method, url=self._path, data=self._body or b"", headers=headers)
    request.context["timestamp"] = headers["X-Amz-Date"]
    return request


access_control.IAMRequestBase._create_aws_request = _create_aws_request
