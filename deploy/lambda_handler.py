"""The HTTP API on AWS Lambda, behind API Gateway (HTTP API or REST API), an ALB or a function
URL, through apig-wsgi. Environment: MODEL, a model file (unset: the model bundled with the
package); BACKEND, "torch" (default) or "onnx". Tested by tests/test_lambda.py."""

import os

from apig_wsgi import make_lambda_handler

from colorful_world.apps.server import create_app

# Created once per instance, at cold start; every invocation it serves shares the model.
# Lambda carries at most 6 MB each way, base64 (4/3) included, and a PNG answer takes about
# 2 bytes a pixel: these limits keep both directions under it.
app = create_app(checkpoint=os.environ.get("MODEL") or None,
                 backend=os.environ.get("BACKEND") or "torch",
                 max_bytes=4_000_000, max_pixels=2_000_000)
# PNG answers go back as base64 (REST API events need the flag; the others have it by default);
# JSON errors and the page stay text.
handler = make_lambda_handler(app, binary_support=True)
