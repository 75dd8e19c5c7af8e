"""The official, unmodified FC 3.0 Python SDK (alibabacloud-fc20230330) creates an HTTP
trigger on a running fcx server (--auth signature) and reads back the URL it is served at.

Run by crates/fcx/tests/e2e_web.rs with the venv scripts/test.sh creates (target/sdk-venv):
    FCX_ENDPOINT=127.0.0.1:PORT FCX_ACCESS_KEY_ID=... FCX_ACCESS_KEY_SECRET=... \
    FCX_TESTFN_ZIP=/path/to/testfn.zip target/sdk-venv/bin/python tests/sdk/fc3_sdk_http_trigger.py
Prints `urlInternet: <url>` (the test calls it) and "SDK OK"; any failure raises.
"""

import base64
import json
import os
import sys

from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import models as open_api_models


def main():
    fc = Client(
        open_api_models.Config(
            access_key_id=os.environ["FCX_ACCESS_KEY_ID"],
            access_key_secret=os.environ["FCX_ACCESS_KEY_SECRET"],
            endpoint=os.environ["FCX_ENDPOINT"],
            protocol="http",
            read_timeout=60000,
            connect_timeout=5000,
        )
    )
    with open(os.environ["FCX_TESTFN_ZIP"], "rb") as f:
        code = base64.b64encode(f.read()).decode()
    fc.create_function(
        fc_models.CreateFunctionRequest(
            body=fc_models.CreateFunctionInput(
                function_name="sdk-web",
                runtime="custom.debian12",
                handler="index.handler",
                timeout=10,
                code=fc_models.InputCodeLocation(zip_file=code),
                custom_runtime_config=fc_models.CustomRuntimeConfig(
                    command=["./bootstrap"], port=9000
                ),
            )
        )
    )
    config = fc_models.HTTPTriggerConfig(auth_type="anonymous", methods=["GET", "POST"])
    created = fc.create_trigger(
        "sdk-web",
        fc_models.CreateTriggerRequest(
            body=fc_models.CreateTriggerInput(
                trigger_name="http",
                trigger_type="http",
                trigger_config=json.dumps(config.to_map()),
            )
        ),
    )
    assert created.status_code == 200, created.status_code
    url = created.body.http_trigger.url_internet
    assert url, created.body
    got = fc.get_trigger("sdk-web", "http")
    assert got.body.http_trigger.url_internet == url, got.body
    assert got.body.http_trigger.url_intranet, got.body
    listed = fc.list_triggers("sdk-web", fc_models.ListTriggersRequest())
    assert [t.trigger_name for t in listed.body.triggers] == ["http"], listed.body
    print(f"urlInternet: {url}", flush=True)
    print("SDK OK", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"SDK FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise
