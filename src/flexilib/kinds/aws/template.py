"""Reading an AWS SAM template: its functions, their settings and their API routes.

Only what serving the application's HTTP APIs needs is read, and only those
fields are resolved, so an intrinsic in `Policies` or an `AWS::DynamoDB::Table`
never stops a template from loading:

- `AWS::Serverless::Function`: `CodeUri` (a folder, relative to the
  template), `Handler`, `Runtime`, `Timeout`, `MemorySize`, `FunctionName`,
  `Environment.Variables`, and `Events` of type `Api` (a REST API: payload
  1.0) and `HttpApi` (payload 2.0, or `PayloadFormatVersion`; no `Path` means
  the `$default` route). Other event types are listed, not served.
- `Globals.Function` under each function's own properties (environment
  variables merged by name, as SAM does).
- `Parameters` take their `Default`, or a value given on the rule
  (`param.NAME=value`).
- Intrinsics, short (`!Ref`) or long (`{"Ref": ...}`) form: `Ref` (parameters,
  pseudo parameters, resources), `Fn::Sub`, `Fn::GetAtt` (a function's `Arn`;
  another resource's attribute stands as `Resource.Attribute`), `Fn::Join`,
  `Fn::Select`. Any other raises TemplateError naming the template line.

YAML is read with PyYAML's safe loader plus constructors for the
CloudFormation tags; every mapping and tag remembers its line for messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flexilib.kinds.aws.context import function_arn
from flexilib.kinds.aws.events import ACCOUNT_ID

__all__ = ["SamEvent", "SamFunction", "TemplateError", "load_template"]

_FUNCTION = "AWS::Serverless::Function"
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """A template problem, located by file and line."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclass
class SamEvent:
    """An API event of a function: one route."""

    name: str
    type: str  # Api or HttpApi
    method: str
    path: str  # a template path, or $default
    fmt: str
    line: int


@dataclass
class SamFunction:
    name: str  # the logical id
    function_name: str
    runtime: str
    handler: str
    code_dir: Path
    timeout: float
    memory: int
    environment: dict[str, str]
    line: int
    events: list[SamEvent] = field(default_factory=list)
    other_events: list[str] = field(default_factory=list)  # "S3 (Upload)": not served


class _Map(dict):
    """A mapping that knows its line and the line of each key."""

    line = 0
    key_lines: dict = {}  # replaced per instance


class _Intrinsic:
    __slots__ = ("name", "value", "line")

    def __init__(self, name: str, value: Any, line: int) -> None:
        self.name, self.value, self.line = name, value, line


class _Loader(yaml.SafeLoader):
    """SafeLoader that knows the CloudFormation tags and keeps line numbers."""


def _construct_map(loader: _Loader, node: yaml.MappingNode):
    data = _Map()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    data.update(loader.construct_mapping(node, deep=True))
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            data.key_lines[key_node.value] = key_node.start_mark.line + 1


def _construct_tag(loader: _Loader, suffix: str, node: yaml.Node) -> _Intrinsic:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return _Intrinsic(name, value, node.start_mark.line + 1)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_multi_constructor("!", _construct_tag)


class _Resolver:
    """Evaluates intrinsics against the template's parameters and resources."""

    def __init__(self, path: Path, template: dict, params: dict[str, str], region: str) -> None:
        self.path = path
        self.region = region
        self.resources = template.get("Resources") or {}
        self.params: dict[str, str] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            if name in params:
                self.params[name] = params[name]
            elif isinstance(spec, dict) and "Default" in spec:
                self.params[name] = str(spec["Default"])
        unknown = set(params) - set(template.get("Parameters") or {})
        if unknown:
            raise TemplateError(path, 0, f"param.{sorted(unknown)[0]}: no such template parameter")
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": path.parent.name or "flexilib",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/flexilib/local",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def error(self, line: int, message: str) -> TemplateError:
        return TemplateError(self.path, line, message)

    def value(self, value: Any, line: int) -> Any:
        """`value` with every intrinsic in it evaluated."""
        if isinstance(value, dict) and len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                value = _Intrinsic(key, inner, getattr(value, "line", line))
        if isinstance(value, _Intrinsic):
            return self._intrinsic(value)
        if isinstance(value, dict):
            line = getattr(value, "line", line)
            return {k: self.value(v, line) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, line) for v in value]
        return value

    def text(self, value: Any, line: int, what: str) -> str:
        value = self.value(value, line)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(line, f"{what} must be a string, not {type(value).__name__}")
        return str(value)

    def _intrinsic(self, node: _Intrinsic) -> Any:
        name, value, line = node.name, node.value, node.line
        if name == "Ref":
            return self._ref(self.text(value, line, "!Ref"), line)
        if name == "Fn::GetAtt":
            parts = self.value(value, line)
            if not (isinstance(parts, list) and len(parts) == 2):
                raise self.error(line, "!GetAtt needs Resource.Attribute")
            return self._getatt(str(parts[0]), str(parts[1]), line)
        if name == "Fn::Sub":
            return self._sub(value, line)
        if name == "Fn::Join":
            parts = self.value(value, line)
            if not (isinstance(parts, list) and len(parts) == 2 and isinstance(parts[1], list)):
                raise self.error(line, "!Join needs [delimiter, [values]]")
            return str(parts[0]).join(str(p) for p in parts[1])
        if name == "Fn::Select":
            parts = self.value(value, line)
            try:
                return parts[1][int(parts[0])]
            except (TypeError, ValueError, IndexError, KeyError):
                raise self.error(
                    line, "!Select needs [index, [values]] with index in range"
                ) from None
        short = name.removeprefix("Fn::")
        raise self.error(
            line,
            f"!{short} is not supported by flexilib here (supported: !Ref, !Sub, !GetAtt, "
            "!Join, !Select); put a literal value in this field",
        )

    def _ref(self, name: str, line: int) -> str:
        if name in self.params:
            return self.params[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.resources:
            return self._physical_name(name)
        raise self.error(
            line,
            f"!Ref {name}: no parameter with a Default, pseudo parameter or resource of that name",
        )

    def _physical_name(self, logical: str) -> str:
        resource = self.resources.get(logical)
        if isinstance(resource, dict) and resource.get("Type") == _FUNCTION:
            props = resource.get("Properties") or {}
            name = props.get("FunctionName")
            if isinstance(name, str):
                return name
        return logical

    def _getatt(self, logical: str, attribute: str, line: int) -> str:
        resource = self.resources.get(logical)
        if resource is None:
            raise self.error(line, f"!GetAtt {logical}.{attribute}: no resource {logical}")
        if isinstance(resource, dict) and resource.get("Type") == _FUNCTION:
            if attribute != "Arn":
                raise self.error(line, f"!GetAtt {logical}.{attribute}: a function has only Arn")
            return function_arn(self.region, ACCOUNT_ID, self._physical_name(logical))
        return f"{logical}.{attribute}"

    def _sub(self, value: Any, line: int) -> str:
        variables: dict[str, Any] = {}
        if isinstance(value, list):
            if len(value) != 2 or not isinstance(value[1], dict):
                raise self.error(line, "!Sub needs a string or [string, {variables}]")
            value, variables = value[0], {k: self.value(v, line) for k, v in value[1].items()}
        if not isinstance(value, str):
            raise self.error(line, "!Sub needs a string")

        def replace(found: re.Match) -> str:
            name = found.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                logical, attribute = name.split(".", 1)
                return self._getatt(logical, attribute, line)
            return self._ref(name, line)

        return _SUB_VARIABLE.sub(replace, value)


def _merge_globals(defaults: dict, props: dict) -> dict:
    merged = dict(defaults)
    for key, value in props.items():
        if key == "Environment" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            variables = dict(merged[key].get("Variables") or {})
            variables.update(value.get("Variables") or {})
            merged[key] = {**merged[key], **value, "Variables": variables}
        else:
            merged[key] = value
    return merged


def _event(resolve: _Resolver, name: str, event: Any, line: int) -> SamEvent | str:
    """The route of an Api/HttpApi event, or the description of another event type."""
    if not isinstance(event, dict):
        raise resolve.error(line, f"event {name} must be a mapping")
    kind = resolve.text(event.get("Type", ""), line, f"event {name} Type")
    props = event.get("Properties") or {}
    if kind not in ("Api", "HttpApi"):
        return f"{kind} ({name})"
    fmt = "1.0" if kind == "Api" else "2.0"
    if kind == "HttpApi":
        fmt = resolve.text(props.get("PayloadFormatVersion", "2.0"), line, "PayloadFormatVersion")
        if fmt not in ("1.0", "2.0"):
            raise resolve.error(line, f"event {name}: PayloadFormatVersion must be 1.0 or 2.0")
        if "Path" not in props:
            return SamEvent(name, kind, "ANY", "$default", fmt, line)
    if "Path" not in props or "Method" not in props:
        raise resolve.error(line, f"event {name}: an {kind} event needs Path and Method")
    path = resolve.text(props["Path"], line, f"event {name} Path")
    method = resolve.text(props["Method"], line, f"event {name} Method").upper()
    return SamEvent(name, kind, method, path, fmt, line)


def load_template(
    path: str | Path, params: dict[str, str] | None = None, region: str = "us-east-1"
) -> list[SamFunction]:
    """The functions of the SAM template at `path`; TemplateError with the line when invalid."""
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(path, 0, f"cannot read the template: {exc}") from None
    try:
        template = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise TemplateError(path, mark.line + 1 if mark else 0, f"not valid YAML: {exc}") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(path, 0, "not a SAM template: no Resources mapping")
    resolve = _Resolver(path, template, params or {}, region)
    defaults = (template.get("Globals") or {}).get("Function") or {}
    functions = []
    resources = template["Resources"]
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != _FUNCTION:
            continue
        line = getattr(resources, "key_lines", {}).get(logical, 0)
        props = _merge_globals(defaults, resource.get("Properties") or {})
        functions.append(_function(resolve, logical, props, line, path.parent))
    if not functions:
        raise TemplateError(path, 0, f"no {_FUNCTION} in Resources")
    return functions


def _function(resolve: _Resolver, logical: str, props: dict, line: int, base: Path) -> SamFunction:
    if props.get("PackageType") == "Image" or "InlineCode" in props:
        raise resolve.error(line, f"{logical}: only CodeUri functions (a folder) can be run")
    code_uri = resolve.text(props.get("CodeUri", "."), line, f"{logical} CodeUri")
    if code_uri.startswith("s3://"):
        raise resolve.error(line, f"{logical}: CodeUri {code_uri} is in S3; use a local folder")
    code_dir = (base / code_uri).resolve()
    if not code_dir.is_dir():
        raise resolve.error(line, f"{logical}: CodeUri {code_uri} is not a folder")
    runtime = resolve.text(props.get("Runtime", ""), line, f"{logical} Runtime")
    handler = resolve.text(props.get("Handler", ""), line, f"{logical} Handler")
    if not runtime or not handler:
        raise resolve.error(line, f"{logical}: Runtime and Handler are required")
    try:
        timeout = float(resolve.value(props.get("Timeout", 3), line))
        memory = int(resolve.value(props.get("MemorySize", 128), line))
    except (TypeError, ValueError):
        raise resolve.error(line, f"{logical}: Timeout and MemorySize must be numbers") from None
    variables = resolve.value((props.get("Environment") or {}).get("Variables") or {}, line)
    environment = {str(k): _env_text(v) for k, v in variables.items()}
    name = props.get("FunctionName")
    function = SamFunction(
        logical,
        resolve.text(name, line, f"{logical} FunctionName") if name is not None else logical,
        runtime,
        handler,
        code_dir,
        timeout,
        memory,
        environment,
        line,
    )
    events = props.get("Events") or {}
    for event_name, event in events.items():
        found = _event(
            resolve, event_name, event, getattr(events, "key_lines", {}).get(event_name, line)
        )
        if isinstance(found, SamEvent):
            function.events.append(found)
        else:
            function.other_events.append(found)
    return function


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
