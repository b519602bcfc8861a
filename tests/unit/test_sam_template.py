"""Reading SAM templates (kinds/aws/template.py): globals, parameters, intrinsics, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexilib.kinds.aws.template import TemplateError, load_template

TEMPLATE = """\
Parameters:
  Stage: {Type: String, Default: dev}
  Secret: {Type: String}
Globals:
  Function:
    Runtime: python3.12
    Timeout: 7
    Environment:
      Variables: {A: global, B: global}
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Handler: app.handler
      MemorySize: 512
      Environment:
        Variables:
          B: !Sub "${Stage}-${AWS::Region}-${!Literal}"
          C: !Ref Table
          D: !GetAtt Table.Arn
          E: !Join [":", [x, !Ref Stage]]
          F: {"Fn::Sub": ["${X}", {X: !Ref Stage}]}
          G: true
      Events:
        Rest: {Type: Api, Properties: {Path: "/a/{b}", Method: post}}
        Http: {Type: HttpApi}
        Queue: {Type: SQS, Properties: {Queue: q}}
"""


def template(tmp_path: Path, text: str = TEMPLATE) -> Path:
    (tmp_path / "fn").mkdir(exist_ok=True)
    path = tmp_path / "template.yaml"
    path.write_text(text)
    return path


def test_functions_with_globals_parameters_and_intrinsics(tmp_path):
    (fn,) = load_template(template(tmp_path), {"Secret": "s"}, "eu-west-1")
    assert (fn.name, fn.runtime, fn.handler, fn.timeout, fn.memory) == (
        "Fn",
        "python3.12",
        "app.handler",
        7.0,
        512,
    )
    assert fn.code_dir == (tmp_path / "fn").resolve()
    assert fn.environment == {
        "A": "global",
        "B": "dev-eu-west-1-${Literal}",
        "C": "Table",
        "D": "Table.Arn",
        "E": "x:dev",
        "F": "dev",
        "G": "true",
    }
    assert [(e.type, e.method, e.path, e.fmt) for e in fn.events] == [
        ("Api", "POST", "/a/{b}", "1.0"),
        ("HttpApi", "ANY", "$default", "2.0"),
    ]
    assert fn.other_events == ["SQS (Queue)"]


def test_a_parameter_value_from_the_rule_wins(tmp_path):
    (fn,) = load_template(template(tmp_path), {"Stage": "prod"})
    assert fn.environment["E"] == "x:prod"
    with pytest.raises(TemplateError, match="param.Nope"):
        load_template(template(tmp_path), {"Nope": "1"})


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("!Ref Table", "!If [c, a, b]", "!If", "!If is not supported"),
        ("!Ref Table", "!Ref Secret", "!Ref Secret", "!Ref Secret"),  # no Default, no value
        ("!GetAtt Table.Arn", "!GetAtt Fn.Role", "Fn.Role", "only Arn"),
        ("CodeUri: fn", "CodeUri: nowhere", "  Fn:", "not a folder"),  # the function's line
        ("Runtime: python3.12", "Runtime: [python3.12", "Timeout", "not valid YAML"),
    ],
)
def test_errors_name_the_template_line(tmp_path, old, new, where, message):
    text = TEMPLATE.replace(old, new)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if where in row)
    with pytest.raises(TemplateError, match=message) as error:
        load_template(template(tmp_path, text))
    assert f"template.yaml:{line}:" in str(error.value)


def test_not_a_template(tmp_path):
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(template(tmp_path, "a: 1\n"))
