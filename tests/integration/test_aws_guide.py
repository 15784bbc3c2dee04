"""The AWS deploy docs against what they describe: the template's checkov skips against the table
of accepted findings in deploy/aws/README.md; deploy/aws/GUIDE.md against the template's
parameters, the settings and the secrets' keys."""

from __future__ import annotations

import re
from typing import Any

from awstemplatekit import ROOT, load_template, resources_of_type

README = ROOT / "deploy" / "aws" / "README.md"
# Cells of the accepted-findings table that stand for a group of resources.
GROUPS = {"every function": "AWS::Serverless::Function",
          "every function's log group": "AWS::Logs::LogGroup"}


def template_skips(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(check id, resource id) → comment of every `Metadata: checkov: skip:` entry."""
    skips: dict[tuple[str, str], str] = {}
    for resource_id, resource in template["Resources"].items():
        checkov = (resource.get("Metadata") or {}).get("checkov") or {}
        for entry in checkov.get("skip", []):
            skips[(entry["id"], resource_id)] = entry.get("comment", "")
    return skips


def function_log_groups(template: dict[str, Any]) -> set[str]:
    """The log groups named /aws/lambda/...: one per function."""
    groups = set()
    for resource_id, resource in resources_of_type(template, "AWS::Logs::LogGroup").items():
        name = resource["Properties"]["LogGroupName"]
        text = name.get("Fn::Sub") if isinstance(name, dict) else name
        if isinstance(text, str) and text.startswith("/aws/lambda/"):
            groups.add(resource_id)
    return groups


def readme_skips(template: dict[str, Any]) -> set[tuple[str, str]]:
    """(check id, resource id) pairs the README's accepted-findings table lists."""
    section = README.read_text(encoding="utf-8").split("## Policy as code: checkov", 1)[1]
    section = section.split("\n## ", 1)[0]
    pairs = set()
    for line in section.splitlines():
        match = re.match(r"\| `(CKV\w+)` [^|]*\| ([^|]+) \|", line)
        if match is None:
            continue
        check, cell = match.group(1), match.group(2).strip()
        if cell == "every function":
            resources = set(resources_of_type(template, GROUPS[cell]))
        elif cell == "every function's log group":
            resources = function_log_groups(template)
        else:
            resources = set(re.findall(r"`(\w+)`", cell))
        pairs |= {(check, resource) for resource in resources}
    return pairs


def test_every_checkov_skip_has_a_reason_and_is_listed_in_the_readme() -> None:
    """Each checkov finding skipped in the template carries a comment and is in the README's
    table, and the table lists no skip the template does not make."""
    template = load_template()
    skips = template_skips(template)
    assert skips, "the template skips no checkov check: update the README's table"
    short = sorted(key for key, comment in skips.items() if len(comment.split()) < 8)
    assert not short, f"skips without a real reason: {short}"
    assert set(skips) == readme_skips(template)


GUIDE = ROOT / "deploy" / "aws" / "GUIDE.md"


def test_the_guide_names_every_template_parameter() -> None:
    """Every parameter of template.yaml is named (in backticks) in deploy/aws/GUIDE.md."""
    guide = GUIDE.read_text(encoding="utf-8")
    missing = [name for name in load_template()["Parameters"] if f"`{name}`" not in guide]
    assert not missing


def test_every_setting_the_guide_names_exists_and_ssm_ones_are_plain() -> None:
    """Each PAYWIRE_* variable and /paywire/<stage>/<name> parameter in the guide is a setting
    (a provider section's field under its flat name too), and none of the SSM ones is a secret
    or a source setting (paywire refuses those)."""
    from paywire.aws.secrets import SECRET_FIELDS, SOURCE_FIELDS
    from paywire.settings import Settings, StageSource

    guide = GUIDE.read_text(encoding="utf-8")
    fields = set(Settings.setting_paths()) | set(StageSource.model_fields)
    named = {m.lower() for m in re.findall(r"PAYWIRE_([A-Z0-9_]+)", guide)} - {"lambda_catalog"}
    ssm = set(re.findall(r"/paywire/(?:<stage>|\$STAGE)/([a-z0-9_]+)", guide))
    ssm |= set(re.findall(r"^put ([a-z0-9_]+) ", guide, flags=re.M))
    assert named and ssm >= {"catalog_path", "cors_origins", "aps_env", "providers"}
    assert sorted(named - fields) == [] and sorted(ssm - fields) == []
    assert not ssm & (set(SECRET_FIELDS) | set(SOURCE_FIELDS))


def test_the_guide_lists_the_secret_keys_paywire_reads() -> None:
    """The keys the guide gives each secret are exactly the ones paywire.aws.secrets reads."""
    from paywire.aws.secrets import APP_KEYS, PAYPAL_KEYS

    guide = GUIDE.read_text(encoding="utf-8")

    def keys(secret: str) -> set[str]:
        match = re.search(rf"- `paywire/<stage>/{secret}`: `\{{(.+?)\}}`", guide, flags=re.S)
        assert match is not None, secret
        return set(re.findall(r'"(\w+)"', match.group(1)))

    assert keys("paypal") == {"environment", *PAYPAL_KEYS}
    assert keys("app") == set(APP_KEYS)
