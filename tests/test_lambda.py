"""deploy/lambda_handler.py, called as Lambda calls it: with API Gateway HTTP API events in
payload format 2.0 (the shape AWS documents for a $default route), answering health, a photo
sent as base64 and JSON errors; colour strength, contrast restoration and hints as query
parameters and as multipart form fields, in HTTP API (2.0) and REST API (1.0) events."""

import base64
import importlib.util
import io
import json
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from colorful_world import Colorizer
from colorful_world.apps.http_limits import lambda_limits
from colorful_world.nets.model_record import BUNDLED_MODEL
from test_server import multipart

HANDLER = Path(__file__).parent.parent / "deploy" / "lambda_handler.py"


def load_handler(model: Path):
    """The module's `handler`, loaded as Lambda loads it, with MODEL set to `model`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODEL", str(model))
        mp.delenv("BACKEND", raising=False)
        spec = importlib.util.spec_from_file_location("lambda_handler", HANDLER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.handler


@pytest.fixture(scope="module")
def handler(tiny_model):
    return load_handler(tiny_model)


@pytest.fixture(scope="module")
def hinted_handler():
    """The bundled model, which takes hints."""
    return load_handler(BUNDLED_MODEL)


@pytest.fixture(scope="module")
def hinted() -> Colorizer:
    return Colorizer.from_checkpoint(None)


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
    if query:  # the raw string as sent, and its parameters decoded, as API Gateway gives both
        result["queryStringParameters"] = dict(urllib.parse.parse_qsl(query))
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
    assert (body["max_bytes"], body["max_pixels"]) == lambda_limits()  # within Lambda's payload


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
    ({}, {"checkpoint": None, "backend": "auto"}),  # the bundled model, on torch where it is installed
    ({"MODEL": "", "BACKEND": ""}, {"checkpoint": None, "backend": "auto"}),
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
    max_bytes, max_pixels = lambda_limits()
    assert calls == [{**expected, "max_bytes": max_bytes, "max_pixels": max_pixels}]


def rest_api_event(method: str, path: str, body: bytes, content_type: str, query: dict) -> dict:
    """A REST API (payload format 1.0) event: the query only as decoded parameters, which
    apig-wsgi encodes again; a binary body base64-encoded ("*/*" declared binary)."""
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": content_type, "Host": "abc123.execute-api.eu-west-1.amazonaws.com",
                    "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"},
        "queryStringParameters": query,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": method, "stage": "prod",
                           "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                           "identity": {"sourceIp": "203.0.113.7"}},
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }


def grey_astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut()).resize((128, 96)).convert("L")


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def answer_pixels(response: dict) -> np.ndarray:
    assert response["statusCode"] == 200, response.get("body")
    assert content_type(response) == "image/png" and response["isBase64Encoded"] is True
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(response["body"]))))


HINTS = [[40, 70, "#2050ff"], [100, 20, "#30c040"]]


def test_strength_and_hints_in_the_query_string(hinted_handler, hinted):
    photo = grey_astronaut()
    query = urllib.parse.urlencode({"strength": "0.5", "hints": json.dumps(HINTS)})
    response = hinted_handler(event("POST", "/colorize", png_of(photo), "image/png", query=query), CONTEXT)
    expected = hinted.colorize(photo, chroma_gain=hinted.chroma_gain * 0.5, hints=[tuple(h) for h in HINTS])
    assert np.array_equal(answer_pixels(response), np.asarray(expected))
    plain = hinted_handler(event("POST", "/colorize", png_of(photo), "image/png"), CONTEXT)
    assert not np.array_equal(answer_pixels(plain), answer_pixels(response))
    grey = hinted_handler(event("POST", "/colorize", png_of(photo), "image/png", query="strength=0"), CONTEXT)
    pixels = answer_pixels(grey).astype(int)
    assert np.abs(pixels - pixels[..., :1]).max() <= 1  # strength 0: grey


def test_settings_as_multipart_form_fields(hinted_handler, hinted):
    """What the upload page posts: the photo and each setting as fields of one form."""
    photo = grey_astronaut().point(lambda v: 90 + v * 70 // 255)  # a faded print
    body, form_type = multipart([(b"image", b'"grandma.png"', png_of(photo)), (b"strength", None, b"2"),
                                 (b"restore_contrast", None, b"1"), (b"hints", None, json.dumps(HINTS).encode())])
    response = hinted_handler(event("POST", "/colorize", body, form_type), CONTEXT)
    expected = hinted.colorize(photo, chroma_gain=hinted.chroma_gain * 2, hints=[tuple(h) for h in HINTS],
                               restore_contrast=True)
    assert np.array_equal(answer_pixels(response), np.asarray(expected))
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["content-disposition"] == 'inline; filename="grandma-colour.png"'


def test_a_rest_api_event_carries_the_settings_too(hinted_handler, hinted):
    photo = grey_astronaut()
    query = {"strength": "1.5", "hints": json.dumps(HINTS)}  # quotes, brackets and '#' decoded
    response = hinted_handler(rest_api_event("POST", "/colorize", png_of(photo), "image/png", query), CONTEXT)
    expected = hinted.colorize(photo, chroma_gain=hinted.chroma_gain * 1.5, hints=[tuple(h) for h in HINTS])
    assert np.array_equal(answer_pixels(response), np.asarray(expected))


@pytest.mark.parametrize("query, form, words", [
    ("strength=3", None, "strength must be a number from 0 to 2"),
    (None, {"strength": b"-1"}, "strength must be a number from 0 to 2"),
    ("restore_contrast=yes", None, "restore_contrast must be 1 or 0"),
    ("hints=" + urllib.parse.quote('[[1, 2, "#12345g"]]'), None, "is not #rrggbb"),
    (None, {"hints": b"[[1, 2]"}, "JSON list"),
    (None, {"hints": b'[[128, 2, "#ff0000"]]'}, "outside the 128x96 photo"),
    (None, {"hints": json.dumps([[1, 1, "#ff0000"]] * 257).encode()}, "at most 256"),
])
def test_bad_settings_are_json_400(hinted_handler, query, form, words):
    photo = png_of(grey_astronaut())
    if form is None:
        request = event("POST", "/colorize", photo, "image/png", query=query)
    else:
        body, form_type = multipart([(b"image", b'"a.png"', photo), *((k.encode(), None, v) for k, v in form.items())])
        request = event("POST", "/colorize", body, form_type)
    response = hinted_handler(request, CONTEXT)
    assert response["statusCode"] == 400
    assert words in json_error(response)


def test_a_model_without_hints_refuses_them(handler):
    query = "hints=" + urllib.parse.quote(json.dumps(HINTS))
    response = handler(event("POST", "/colorize", png_of(grey_astronaut()), "image/png", query=query), CONTEXT)
    assert response["statusCode"] == 400
    assert "trained without hints" in json_error(response)
