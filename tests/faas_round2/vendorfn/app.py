"""A function that vendors its own `requests` (as `pip install -t .` does) and a `lib` package."""

import os

import requests

from lib import helper


def handler(event, context):
    return {
        "requests": requests.__file__,
        "vendored": getattr(requests, "VENDORED", False),
        "helper": helper.WHO,
        "name": __name__,
        "cwd": os.getcwd(),
        "data": open("data.json").read().strip(),
    }
