"""The HTTP API on AWS Lambda, behind API Gateway (HTTP API or REST API), an ALB or a function
URL, through apig-wsgi. Environment: MODEL, a model file (unset: the model bundled with the
package); BACKEND, "auto" (the default: ONNX Runtime for an .onnx model, else torch where it is
installed, else ONNX Runtime), "torch" or "onnx". The settings reach the app as on any server,
as query parameters or multipart form fields: `strength`, `restore_contrast`, `hints` (a JSON
list of [x, y, "#rrggbb"]) and `size`. Tested by tests/test_lambda.py, with HTTP API (2.0) and
REST API (1.0) events."""

import os

from apig_wsgi import make_lambda_handler

from colorful_world.apps.http_limits import bounded_lambda_handler, lambda_limits
from colorful_world.apps.server import create_app

# Created once per instance, at cold start; every invocation it serves shares the model.
# Lambda carries at most 6 MB each way, base64 (4/3) included, and a PNG answer takes at worst
# about 5 bytes a pixel (grain does not compress): these limits keep both directions under it
# for any photo (http_limits.lambda_limits).
MAX_BYTES, MAX_PIXELS = lambda_limits()
app = create_app(checkpoint=os.environ.get("MODEL") or None,
                 backend=os.environ.get("BACKEND") or "auto",
                 max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
# PNG answers go back as base64 (REST API events need the flag; the others have it by default);
# JSON errors and the page stay text. A malformed event is a 400, not an exception.
handler = bounded_lambda_handler(make_lambda_handler(app, binary_support=True), MAX_PIXELS)
