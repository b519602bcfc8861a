"""A SAM application served from its template (`sam:` targets and `--sam`), on a real server.

tests/sam_app/template.yaml has four functions in two runtimes: Powertools on an
HTTP API (2.0), Chalice on a REST API (1.0), Flask with a blueprint in a package
behind `{proxy+}` (all in process), and a `provided.al2023` bootstrap running
awslambdaric over the Runtime API. Two functions hold an `app.py` and a
`utils.py` of their own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import REPO, free_port, wait_until

APP = REPO / "tests" / "sam_app"


def copy_app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    shutil.copytree(APP, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture
def sam(start_server, tmp_path):
    folder = copy_app(tmp_path)
    return start_server("/ = sam:template.yaml\n", folder=folder)


def test_http_api_route_with_path_parameters_globals_and_intrinsics(sam):
    response = requests.get(f"{sam.url}/users/1", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["routeKey"] == "GET /users/{id}"
    assert body["pathParameters"] == {"id": "1"}
    assert body["env"] == {
        "STAGE": "test",  # Globals, !Ref to a parameter's Default
        "SHARED": "from-globals",
        "GREETING": "hello-test",  # !Sub
        "ORDERS": "OrdersFunction",  # !Ref to a function
    }
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:UsersFunction"


def test_exact_route_wins_over_the_template(sam):
    body = requests.get(f"{sam.url}/users/me", timeout=10).json()
    assert body["user"] == "me"


def test_task_root_is_the_working_directory_and_app_is_the_module_name(sam):
    body = requests.get(f"{sam.url}/users/me", timeout=10).json()
    assert body["module"] == "app"
    assert body["cwd"] == str((sam.folder / "users").resolve())
    assert requests.get(f"{sam.url}/users/2", timeout=10).json()["data"] == "users data"


def test_powertools_http_errors(sam):
    missing = requests.get(f"{sam.url}/users/99", timeout=10)
    assert missing.status_code == 404
    assert missing.json() == {"statusCode": 404, "message": "no user 99"}
    bad = requests.post(f"{sam.url}/users", json={}, timeout=10)
    assert bad.status_code == 400
    created = requests.post(f"{sam.url}/users", json={"name": "ada"}, timeout=10)
    assert (created.status_code, created.json()) == (201, {"created": "ada"})


def test_rest_api_route_serves_chalice(sam):
    listing = requests.get(f"{sam.url}/orders", timeout=10)
    assert listing.json() == {"orders": ["7", "8"], "utils": "orders"}
    order = requests.get(f"{sam.url}/orders/7", timeout=10)
    assert order.json() == {"id": "7", "item": "tea", "path": "/orders/{order_id}"}
    missing = requests.get(f"{sam.url}/orders/1", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["Code"] == "NotFoundError"


def test_functions_never_share_modules(sam):
    """Both folders hold app.py and utils.py: each function gets its own."""
    for _ in range(3):  # alternate, so neither import is the last one by chance
        assert requests.get(f"{sam.url}/users/1", timeout=10).json()["utils"] == "users"
        assert requests.get(f"{sam.url}/orders", timeout=10).json()["utils"] == "orders"


def test_provided_runtime_gets_the_greedy_route(sam):
    response = requests.get(f"{sam.url}/echo/a/b%20c", timeout=20)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "routeKey": "ANY /echo/{path+}",
        "pathParameters": {"path": "a/b c"},
        "rawPath": "/echo/a/b c",
    }


def test_unmatched_requests_get_api_gateways_answer(sam):
    for method, path in [("GET", "/nowhere"), ("DELETE", "/orders"), ("GET", "/echo")]:
        response = requests.request(method, f"{sam.url}{path}", timeout=10)
        assert response.status_code == 403, (method, path)
        assert response.json() == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize(
    ("file", "old", "new", "path", "key", "value"),
    [
        ("web/site_pkg/views.py", '"one"', '"two"', "/web/page/x", "version", "two"),
        ("users/utils.py", '"users"', '"users2"', "/users/1", "utils", "users2"),
        ("users/data.txt", "users data", "edited", "/users/1", "data", "edited"),
    ],
)
def test_any_edited_file_of_a_function_reloads_it(sam, file, old, new, path, key, value):
    assert requests.get(f"{sam.url}{path}", timeout=10).status_code == 200
    target = sam.folder / file
    target.write_text(target.read_text().replace(old, new))
    wait_until(
        lambda: requests.get(f"{sam.url}{path}", timeout=10).json()[key] == value,
        10,
        what=f"{file} reloaded",
    )


def test_template_edit_reloads_the_routes(sam):
    assert requests.get(f"{sam.url}/people/1", timeout=10).status_code == 403
    template = sam.folder / "template.yaml"
    template.write_text(template.read_text().replace("Path: /users/{id}", "Path: /people/{id}"))
    wait_until(
        lambda: requests.get(f"{sam.url}/people/1", timeout=10).status_code != 403,
        10,
        what="template reloaded",
    )
    # the route now reaches UsersFunction, whose own router knows no /people
    response = requests.get(f"{sam.url}/people/1", timeout=10)
    assert response.json() == {"statusCode": 404, "message": "Not found"}
    assert requests.get(f"{sam.url}/users/1", timeout=10).status_code == 403


def test_sam_flag_serves_the_template(tmp_path):
    folder = copy_app(tmp_path)
    port = free_port()
    log = (tmp_path / "stderr.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "flexilib", "serve", "--sam", "template.yaml"]
        + ["--port", str(port), "--address", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "SERVER_THREAD_COUNT": "2"},
    )
    try:
        wait_until(lambda: "serving" in (tmp_path / "stderr.log").read_text(), 15, what="serving")
        response = requests.get(f"http://127.0.0.1:{port}/orders/8", timeout=10)
        assert response.json()["item"] == "cake"
    finally:
        process.terminate()
        process.wait(20)


def test_routes_command_lists_the_templates_routes(tmp_path):
    folder = copy_app(tmp_path)
    (folder / "proxy.ini").write_text("/ = sam:template.yaml\n")
    out = subprocess.run(
        [sys.executable, "-m", "flexilib", "routes", str(folder / "proxy.ini")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line.split() for line in out.splitlines()[2:]]
    assert [line[:2] for line in lines[:7]] == [
        ["POST", "/users"],
        ["GET", "/orders"],
        ["GET", "/users/me"],
        ["GET", "/users/{id}"],
        ["GET", "/orders/{order_id}"],
        ["ANY", "/web/{proxy+}"],
        ["ANY", "/echo/{path+}"],
    ]
    assert "EchoFunction (provided.al2023, HttpApi 2.0)" in out
    assert "OrdersFunction: Schedule (Nightly) event" in out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("STAGE: !Ref Stage", "STAGE: !FindInMap [A, B, C]"),
        ("STAGE: !Ref Stage", "STAGE: !Ref Nowhere"),
        ("Runtime: python3.11", "Runtime: [python3.11"),
    ],
)
def test_bad_template_is_a_config_error_naming_the_line(tmp_path, edit, message):
    folder = copy_app(tmp_path)
    template = folder / "template.yaml"
    text = template.read_text().replace(edit, message, 1)
    template.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if message in row)
    (folder / "proxy.ini").write_text("/ = sam:template.yaml\n")
    done = subprocess.run(
        [sys.executable, "-m", "flexilib", "check", str(folder / "proxy.ini")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert f"template.yaml:{line}" in done.stderr or f"template.yaml:{line + 1}" in done.stderr
    assert "Traceback" not in done.stderr


UNSUPPORTED = """\
Resources:
  Py:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo_py
      Handler: app.handler
      Runtime: python3.12
      Events:
        Get: {Type: HttpApi, Properties: {Path: /py, Method: GET}}
  Node:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: node
      Handler: index.handler
      Runtime: nodejs20.x
      Events:
        Get: {Type: HttpApi, Properties: {Path: /node, Method: GET}}
"""


def test_unsupported_runtime_is_refused_clearly_while_the_others_serve(start_server, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "echo_py").mkdir(parents=True)
    (folder / "node").mkdir()
    (folder / "echo_py" / "app.py").write_text(
        "def handler(event, context):\n    return {'route': event['routeKey']}\n"
    )
    (folder / "node" / "index.js").write_text("exports.handler = async () => ({});\n")
    (folder / "template.yaml").write_text(UNSUPPORTED)
    server = start_server("/ = sam:template.yaml\n", folder=folder)
    assert requests.get(f"{server.url}/py", timeout=10).json() == {"route": "GET /py"}
    node = requests.get(f"{server.url}/node", timeout=10)
    assert (node.status_code, node.json()) == (500, {"message": "Internal Server Error"})
    assert requests.get(f"{server.url}/other", timeout=10).status_code == 404  # HTTP API only
    server.wait_for_log(r"Node: runtime nodejs20.x is not supported yet")


def test_route_option_on_a_custom_runtime(start_server, tmp_path):
    config = f"/rt = lambda-runtime:{APP / 'echo'} route=ANY:/rt/{{path+}}\n"
    server = start_server(config)
    response = requests.post(f"{server.url}/rt/a/b", timeout=20)
    assert response.json() == {
        "routeKey": "ANY /rt/{path+}",
        "pathParameters": {"path": "a/b"},
        "rawPath": "/rt/a/b",
    }
    missing = requests.get(f"{server.url}/rt", timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})


def test_an_edit_reloads_only_the_function_it_belongs_to(sam):
    assert requests.get(f"{sam.url}/echo/x", timeout=20).status_code == 200
    utils = sam.folder / "users" / "utils.py"
    utils.write_text(utils.read_text().replace('"users"', '"again"'))
    wait_until(
        lambda: requests.get(f"{sam.url}/users/1", timeout=10).json()["utils"] == "again",
        10,
        what="UsersFunction reloaded",
    )
    sam.wait_for_log(r"swapped sam:template.yaml to version 2")
    assert requests.get(f"{sam.url}/echo/x", timeout=20).status_code == 200
    # the custom runtime's process was kept: it started (and was ready) once
    assert len(re.findall(r"EchoFunction: runtime \d+ ready", sam.errors())) == 1
