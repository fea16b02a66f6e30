"""An IAM identity on moto holding exactly the policy template.yaml gives one function's role.

The least-privilege test runs each function's flows as such an identity, with moto's IAM
enforcement on, so a permission the template lacks fails the test. The policy is read from the
template (cfn-lint's loader, for the !Ref/!GetAtt/!Sub/!If tags) and its intrinsics resolved with
the values given, never copied:

    python iam_identity.py --endpoint http://127.0.0.1:5000 --template template.yaml \
        --role WorkerRole --set StateTable.Arn=arn:... --set SinchKeySecretArn=arn:... ...

prints {"user", "access_key_id", "secret_access_key", "policy"} as JSON. Conditions (`!If`) are
evaluated from the template's own Conditions with the parameters given.
"""
import argparse
import json
import re
import sys

import boto3
from cfnlint.decode import cfn_yaml

parser = argparse.ArgumentParser()
parser.add_argument("--endpoint", required=True)
parser.add_argument("--template", required=True)
parser.add_argument("--role", required=True)
parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
args = parser.parse_args()

template = cfn_yaml.load(args.template)
values = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
for name, default in template.get("Parameters", {}).items():
    if "Default" in default:
        values[name] = str(default["Default"])
for pair in args.set:
    name, _, value = pair.partition("=")
    values[name] = value

NO_VALUE = object()


def lookup(name):
    if name == "AWS::NoValue":
        return NO_VALUE
    if name not in values:
        sys.exit(f"iam_identity.py: no value for {name}: pass --set {name}=...")
    return values[name]


def condition(name):
    return truth(template["Conditions"][name])


def truth(node):
    (function, argument), = node.items()
    if function == "Fn::Not":
        return not truth(argument[0])
    if function == "Fn::And":
        return all(truth(a) for a in argument)
    if function == "Fn::Or":
        return any(truth(a) for a in argument)
    if function == "Fn::Equals":
        left, right = (resolve(a) for a in argument)
        return str(left) == str(right)
    if function == "Condition":
        return condition(argument)
    sys.exit(f"iam_identity.py: condition function {function} is not known here")


def resolve(node):
    if isinstance(node, list):
        return [v for v in (resolve(n) for n in node) if v is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, argument), = node.items()
        if key == "Ref":
            return lookup(argument)
        if key == "Fn::GetAtt":
            return lookup(".".join(argument) if isinstance(argument, list) else argument)
        if key == "Fn::Sub":
            text, extra = (argument, {}) if isinstance(argument, str) else argument
            local = {k: resolve(v) for k, v in extra.items()}
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(local.get(m[1], lookup(m[1]))), text)
        if key == "Fn::If":
            name, yes, no = argument
            return resolve(yes if condition(name) else no)
        if key == "Fn::Join":
            separator, parts = argument
            return separator.join(str(p) for p in resolve(parts))
    resolved = {k: resolve(v) for k, v in node.items()}
    return {k: v for k, v in resolved.items() if v is not NO_VALUE}


role = template["Resources"][args.role]["Properties"]
statements = []
for policy in role.get("Policies", []):
    statements.extend(resolve(policy["PolicyDocument"])["Statement"])
document = {"Version": "2012-10-17", "Statement": statements}

iam = boto3.client(
    "iam",
    endpoint_url=args.endpoint,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
user = f"fn-{args.role}"
iam.create_user(UserName=user)
iam.put_user_policy(UserName=user, PolicyName=args.role, PolicyDocument=json.dumps(document))
key = iam.create_access_key(UserName=user)["AccessKey"]
print(json.dumps({
    "user": user,
    "access_key_id": key["AccessKeyId"],
    "secret_access_key": key["SecretAccessKey"],
    "policy": document,
}))
