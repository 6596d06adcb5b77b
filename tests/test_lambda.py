"""deploy/lambda_handler.py, called as Lambda calls it: with API Gateway HTTP API events in
payload format 2.0 (the shape AWS documents for a $default route), answering health, a photo
sent as base64 and JSON errors."""

import base64
import importlib.util
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from skimage import data as skdata

HANDLER = Path(__file__).parent.parent / "deploy" / "lambda_handler.py"


@pytest.fixture(scope="module")
def handler(tiny_model):
    """The module's `handler`, loaded as Lambda loads it, with MODEL set to the tiny model."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODEL", str(tiny_model))
        mp.delenv("BACKEND", raising=False)
        spec = importlib.util.spec_from_file_location("lambda_handler", HANDLER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.handler


def event(method: str, path: str, body: bytes | None = None, content_type: str | None = None,
          query: str = "") -> dict:
    """An HTTP API (payload format 2.0) event as API Gateway sends it: lower-case headers, a
    binary body base64-encoded, no `body` key when there is none."""
    headers = {
        "accept": "*/*",
        "host": "abc123.execute-api.eu-west-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-65f0c0de-0123456789abcdef01234567",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if body is not None:
        headers["content-length"] = str(len(body))
    if content_type is not None:
        headers["content-type"] = content_type
    result = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "requestId": "K8s1xj2xDoEEPdA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2024:19:03:58 +0000",
            "timeEpoch": 1710270238000,
        },
        "isBase64Encoded": body is not None,
    }
    if query:
        result["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        result["body"] = base64.b64encode(body).decode("ascii")
    return result


CONTEXT = SimpleNamespace(function_name="colorful-world", aws_request_id="c6af9ac6-7b61-11e6",
                          memory_limit_in_mb=3008, get_remaining_time_in_millis=lambda: 60_000)


def content_type(response: dict) -> str:
    return {k.lower(): v for k, v in response["headers"].items()}["content-type"]


def json_error(response: dict) -> str:
    assert content_type(response) == "application/json"
    assert response["isBase64Encoded"] is False
    message = json.loads(response["body"])["error"]
    assert isinstance(message, str) and message
    return message


def test_health(handler):
    response = handler(event("GET", "/healthz"), CONTEXT)
    assert response["statusCode"] == 200
    assert content_type(response) == "application/json"
    body = json.loads(response["body"])
    assert body["status"] == "ok"
    assert (body["max_bytes"], body["max_pixels"]) == (4_000_000, 2_000_000)  # Lambda's limits


def test_photo_as_base64(handler):
    photo = Image.fromarray(skdata.astronaut()).resize((61, 47)).convert("L")
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    response = handler(event("POST", "/colorize", buffer.getvalue(), "image/png"), CONTEXT)
    assert response["statusCode"] == 200, response.get("body")
    assert content_type(response) == "image/png"
    assert response["isBase64Encoded"] is True
    answer = Image.open(io.BytesIO(base64.b64decode(response["body"])))
    assert answer.format == "PNG"
    assert (answer.size, answer.mode) == ((61, 47), "RGB")


def test_context_may_be_none(handler):
    assert handler(event("GET", "/healthz"), None)["statusCode"] == 200


def test_not_an_image_is_a_json_415(handler):
    garbage = bytes(range(256)) * 4
    response = handler(event("POST", "/colorize", garbage, "image/png"), CONTEXT)
    assert response["statusCode"] == 415
    assert "not an image" in json_error(response)


def test_over_max_bytes_is_a_json_413(handler):
    response = handler(event("POST", "/colorize", b"\0" * 4_000_001, "image/jpeg"), CONTEXT)
    assert response["statusCode"] == 413
    assert "4,000,000 bytes" in json_error(response)


def test_bad_size_and_unknown_route_are_json(handler):
    response = handler(event("POST", "/colorize", b"x", "image/png", query="size=7"), CONTEXT)
    assert response["statusCode"] == 400
    assert "size must be" in json_error(response)
    response = handler(event("GET", "/nowhere"), CONTEXT)
    assert response["statusCode"] == 404
    json_error(response)


@pytest.mark.parametrize("env, expected", [
    ({}, {"checkpoint": None, "backend": "torch"}),  # the bundled model on torch
    ({"MODEL": "", "BACKEND": ""}, {"checkpoint": None, "backend": "torch"}),
    ({"MODEL": "/var/task/model.onnx", "BACKEND": "onnx"},
     {"checkpoint": "/var/task/model.onnx", "backend": "onnx"}),
])
def test_environment(monkeypatch, env, expected):
    """MODEL and BACKEND reach create_app as they are; unset or empty means the defaults."""
    from colorful_world.apps import server

    calls = []
    monkeypatch.setattr(server, "create_app", lambda **kwargs: calls.append(kwargs))
    for name in ("MODEL", "BACKEND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("lambda_handler_env", HANDLER)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert calls == [{**expected, "max_bytes": 4_000_000, "max_pixels": 2_000_000}]
