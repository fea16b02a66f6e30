"""The environment variables template.yaml gives each function, as JSON: {"Function": [names]}.

    python template_env.py template.yaml

Read with cfn-lint's own YAML loader (CloudFormation's tags understood), as check-template.py
and iam_identity.py read the template.
"""

import json
import sys

from cfnlint.decode import cfn_yaml

template = cfn_yaml.load(sys.argv[1])
variables = {}
for name, resource in template.get("Resources", {}).items():
    if resource.get("Type") != "AWS::Serverless::Function":
        continue
    environment = resource.get("Properties", {}).get("Environment", {})
    variables[name] = sorted(environment.get("Variables", {}).keys())
json.dump(variables, sys.stdout, indent=1)
