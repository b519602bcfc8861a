"""Real applications on the FaaS kinds, as deployed (issue 12's six bugs), on a real server.

Each app in tests/faas_round2/ is one function's folder and uses the real client
library: Powertools (HTTPStatus status codes), Chalice (resourcePath routing), Flask
with a blueprint in a package and Django with views in an app (whole-package reload),
a vendored dependency (the function's folder first), FastAPI on Workers through
`asgi.fetch`, the `js` module and `form_data()`, and a custom runtime whose init fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from conftest import REPO, wait_until

APPS = REPO / "tests" / "faas_round2"


def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def rewrite(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new))


@pytest.fixture
def apps(start_server, tmp_path):
    config = """
/pt1     = lambda:powertoolsfn/app.py:rest_handler format=1.0
/pt      = lambda:powertoolsfn/app.py:http_handler
/books   = lambda:chalicefn/app.py:app format=1.0 route=GET:/,GET:/books/{isbn},POST:/books/{isbn}/reviews
/flask   = lambda:flaskfn/app.py:lambda_handler
/shop    = lambda:djangofn/app.py:lambda_handler
/vendor  = lambda:vendorfn/app.py:handler
/api     = worker:workerfn/worker.py env.WHO=workers
/js      = worker:workerfn/worker.py env.WHO=workers
/form    = worker:workerfn/worker.py env.WHO=workers
/bad1    = lambda-runtime:badinit format=1.0 name=bad1
/bad     = lambda-runtime:badinit
"""
    return start_server(config, folder=site(tmp_path))


# --- bug 1: statusCode as http.HTTPStatus, Decimal in the result ----------------------------


@pytest.mark.parametrize("prefix", ["/pt", "/pt1"])
def test_powertools_http_errors_keep_their_status(apps, prefix):
    missing = requests.get(f"{apps.url}/pt/missing", timeout=10)
    assert missing.status_code == 404, missing.text
    assert missing.json() == {"statusCode": 404, "message": "nothing here"}
    invalid = requests.get(f"{apps.url}/pt/count/abc", timeout=10)
    assert invalid.status_code == 422, invalid.text
    assert invalid.json()["statusCode"] == 422


def test_decimals_are_marshalled_as_the_runtime_does(apps):
    response = requests.get(f"{apps.url}/pt/count/4", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"n": 4, "price": 1.5, "whole": 3}


# --- bug 4: Chalice routes on resourcePath and pathParameters --------------------------------


def test_chalice_routes_with_route_templates(apps):
    book = requests.get(f"{apps.url}/books/12345", timeout=10)
    assert book.status_code == 200, book.text
    assert book.json() == {"isbn": "12345", "resource": "/books/{isbn}"}
    bad = requests.get(f"{apps.url}/books/abc", timeout=10)
    assert bad.status_code == 400
    assert bad.json()["Code"] == "BadRequestError"
    review = requests.post(f"{apps.url}/books/9/reviews", json={"stars": 5}, timeout=10)
    assert review.json() == {"isbn": "9", "review": {"stars": 5}}


def test_unmatched_route_gets_api_gateways_rest_answer(apps):
    response = requests.get(f"{apps.url}/books/9/reviews", timeout=10)  # only POST is routed
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}


# --- bug 2: modules in sub-packages reload ---------------------------------------------------


def test_flask_blueprint_in_a_package_reloads(apps):
    url = f"{apps.url}/flask/hello/ada"
    assert requests.get(url, timeout=10).json() == {
        "hello": "ada",
        "version": "one",
        "module": "web.views",
    }
    rewrite(apps.folder / "flaskfn" / "web" / "views.py", 'VERSION = "one"', 'VERSION = "two"')
    wait_until(lambda: requests.get(url, timeout=10).json()["version"] == "two", 10, what="reload")


def test_django_app_views_reload(apps):
    url = f"{apps.url}/shop/items/5"
    first = requests.get(url, timeout=10)
    assert first.status_code == 200, first.text
    assert first.json() == {"item": 5, "version": "one", "module": "shop.views"}
    rewrite(apps.folder / "djangofn" / "shop" / "views.py", 'VERSION = "one"', 'VERSION = "two"')
    wait_until(lambda: requests.get(url, timeout=10).json()["version"] == "two", 10, what="reload")


def test_worker_deep_module_reloads(apps):
    url = f"{apps.url}/api/hello"
    assert requests.get(url, timeout=10).json() == {"message": "hello workers", "deep": "one"}
    rewrite(apps.folder / "workerfn" / "wpkg" / "deep.py", 'VERSION = "one"', 'VERSION = "two"')
    wait_until(lambda: requests.get(url, timeout=10).json()["deep"] == "two", 10, what="reload")


# --- bugs 3 and 5: the function's folder first, its name, its working directory --------------


def test_vendored_dependency_wins_and_task_root_is_the_cwd(apps):
    body = requests.get(f"{apps.url}/vendor/x", timeout=10).json()
    folder = (apps.folder / "vendorfn").resolve()
    assert body["vendored"] is True
    assert body["requests"] == str(folder / "requests" / "__init__.py")
    assert (body["helper"], body["name"], body["cwd"]) == ("vendorfn", "app", str(folder))
    assert body["data"] == '{"from": "vendorfn"}'


# --- bug 6: Cloudflare's FastAPI page, js, form_data; a runtime's failed init -----------------


def test_fastapi_on_workers_through_asgi_fetch(apps):
    response = requests.post(f"{apps.url}/api/items", json={"a": 1}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"got": {"a": 1}}
    assert response.headers["content-type"] == "application/json"


def test_js_module_response_new_and_console(apps):
    response = requests.get(f"{apps.url}/js", timeout=10)
    assert (response.status_code, response.text) == (201, "made the JS way")
    assert response.headers["x-js"] == "yes"
    wait_until(lambda: "js console from the worker" in apps.stdout.read_text(), 10, what="log")


def test_form_data_with_a_file(apps):
    response = requests.post(
        f"{apps.url}/form",
        data={"name": "ada", "tag": ["x", "y"]},
        files={"upload": ("notes.txt", b"line one\n", "text/plain")},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "ada",
        "tags": ["x", "y"],
        "file": "notes.txt",
        "type": "text/plain",
        "size": 9,
        "text": "line one\n",
    }


@pytest.mark.parametrize(
    ("prefix", "status", "body"),
    [
        ("/bad", 500, {"message": "Internal Server Error"}),
        ("/bad1", 502, {"message": "Internal server error"}),
    ],
)
def test_runtime_init_failure_answers_api_gateways_json(apps, prefix, status, body):
    response = requests.get(f"{apps.url}{prefix}/x", timeout=30)
    assert response.status_code == status
    assert response.json() == body
    assert response.headers["content-type"] == "application/json"
