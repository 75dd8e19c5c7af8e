"""Drives a running fcx server (--auth signature) with the official, unmodified FC 3.0 Python
SDK (alibabacloud-fc20230330): every request is signed by the SDK itself (ACS3-HMAC-SHA256),
so fcx's verification is checked against the ground truth.

Run by crates/fcx/tests/e2e_auth.rs with the venv scripts/test.sh creates (target/sdk-venv):
    FCX_ENDPOINT=127.0.0.1:PORT FCX_ACCESS_KEY_ID=... FCX_ACCESS_KEY_SECRET=... \
    FCX_TESTFN_ZIP=/path/to/testfn.zip target/sdk-venv/bin/python tests/sdk/fc3_sdk_signed.py
Prints one line per step and "SDK OK" at the end; any failure raises (non-zero exit).
"""

import base64
import io
import os
import sys
import zipfile

from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from darabonba.runtime import RuntimeOptions


def client(key_id, secret):
    return Client(
        open_api_models.Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=os.environ["FCX_ENDPOINT"],
            protocol="http",
            read_timeout=60000,
            connect_timeout=5000,
        )
    )


def step(name):
    print(f"step: {name}", flush=True)


def expect_error(code, status, call):
    try:
        call()
    except Exception as e:  # the SDK raises ClientException with the parsed FC body
        got = (getattr(e, "code", None), getattr(e, "status_code", None))
        assert got == (code, status), f"expected {code}/{status}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {code}/{status}, the call succeeded")


def tiny_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "print('hello')\n")
    return base64.b64encode(buf.getvalue()).decode()


def main():
    key_id = os.environ["FCX_ACCESS_KEY_ID"]
    secret = os.environ["FCX_ACCESS_KEY_SECRET"]
    fc = client(key_id, secret)

    step("ListFunctions (GET, empty body, no query)")
    listed = fc.list_functions(fc_models.ListFunctionsRequest())
    assert listed.status_code == 200, listed.status_code

    step("ListFunctions with a query that needs encoding (space, ~, *, /)")
    listed = fc.list_functions(
        fc_models.ListFunctionsRequest(prefix="a b~*/é", limit=5)
    )
    assert listed.status_code == 200 and not listed.body.functions, listed.body

    step("CreateFunction (POST, JSON body) with a tiny zip")
    created = fc.create_function(
        fc_models.CreateFunctionRequest(
            body=fc_models.CreateFunctionInput(
                function_name="sdk-tiny",
                runtime="custom.debian12",
                handler="index.handler",
                code=fc_models.InputCodeLocation(zip_file=tiny_zip()),
                custom_runtime_config=fc_models.CustomRuntimeConfig(
                    command=["python3", "index.py"], port=9000
                ),
                description="created by the official FC 3.0 Python SDK",
            )
        )
    )
    assert created.status_code == 200, created.status_code
    assert created.body.function_name == "sdk-tiny", created.body

    step("GetFunction")
    got = fc.get_function("sdk-tiny", fc_models.GetFunctionRequest())
    assert got.body.function_name == "sdk-tiny", got.body
    assert got.body.description == "created by the official FC 3.0 Python SDK"

    step("ListFunctions with prefix and limit")
    listed = fc.list_functions(fc_models.ListFunctionsRequest(prefix="sdk-", limit=10))
    names = [f.function_name for f in listed.body.functions]
    assert names == ["sdk-tiny"], names

    step("UpdateFunction (PUT)")
    updated = fc.update_function(
        "sdk-tiny",
        fc_models.UpdateFunctionRequest(
            body=fc_models.UpdateFunctionInput(description="updated by the SDK")
        ),
    )
    assert updated.body.description == "updated by the SDK", updated.body

    zip_path = os.environ.get("FCX_TESTFN_ZIP")
    if zip_path:
        step("InvokeFunction (octet-stream body, x-fc-log-type signed too)")
        with open(zip_path, "rb") as f:
            code = base64.b64encode(f.read()).decode()
        fc.create_function(
            fc_models.CreateFunctionRequest(
                body=fc_models.CreateFunctionInput(
                    function_name="sdk-testfn",
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
        invoked = fc.invoke_function_with_options(
            "sdk-testfn",
            fc_models.InvokeFunctionRequest(body=io.BytesIO(b"echo:signed by the SDK")),
            fc_models.InvokeFunctionHeaders(x_fc_log_type="Tail"),
            RuntimeOptions(),
        )
        assert invoked.status_code == 200, invoked.status_code
        body = invoked.body.read()
        assert body == b"signed by the SDK", body
        assert invoked.headers.get("x-fc-log-result"), invoked.headers
        tail = base64.b64decode(invoked.headers["x-fc-log-result"]).decode()
        assert "FC Invoke Start RequestId:" in tail, tail

        step("InvokeFunction of a failing call: x-fc-error-type, HTTP 200")
        failed = fc.invoke_function_with_options(
            "sdk-testfn",
            fc_models.InvokeFunctionRequest(body=io.BytesIO(b"fail")),
            fc_models.InvokeFunctionHeaders(),
            RuntimeOptions(),
        )
        assert failed.status_code == 200, failed.status_code
        assert failed.headers.get("x-fc-error-type") == "UnhandledInvocationError", failed.headers

        step("PublishFunctionVersion, then UpdateFunction so LATEST differs")
        v1 = fc.publish_function_version(
            "sdk-testfn",
            fc_models.PublishFunctionVersionRequest(
                body=fc_models.PublishVersionInput(description="v1 from the SDK")
            ),
        )
        assert v1.body.version_id == "1", v1.body
        fc.update_function(
            "sdk-testfn",
            fc_models.UpdateFunctionRequest(
                body=fc_models.UpdateFunctionInput(environment_variables={"STAGE": "latest"})
            ),
        )
        versions = fc.list_function_versions("sdk-testfn", fc_models.ListFunctionVersionsRequest())
        assert [v.version_id for v in versions.body.versions] == ["1"], versions.body

        step("CreateAlias and InvokeFunction with the alias as qualifier")
        alias = fc.create_alias(
            "sdk-testfn",
            fc_models.CreateAliasRequest(
                body=fc_models.CreateAliasInput(alias_name="prod", version_id="1")
            ),
        )
        assert alias.body.alias_name == "prod", alias.body
        env_v1 = fc.invoke_function_with_options(
            "sdk-testfn",
            fc_models.InvokeFunctionRequest(body=io.BytesIO(b"env"), qualifier="prod"),
            fc_models.InvokeFunctionHeaders(),
            RuntimeOptions(),
        ).body.read().decode()
        assert "STAGE=latest" not in env_v1 and "FC_FUNCTION_VERSION=1" in env_v1, env_v1
        env_latest = fc.invoke_function_with_options(
            "sdk-testfn",
            fc_models.InvokeFunctionRequest(body=io.BytesIO(b"env")),
            fc_models.InvokeFunctionHeaders(),
            RuntimeOptions(),
        ).body.read().decode()
        assert "STAGE=latest" in env_latest, env_latest

        step("InvokeFunction Async: 202 with a request id")
        queued = fc.invoke_function_with_options(
            "sdk-testfn",
            fc_models.InvokeFunctionRequest(body=io.BytesIO(b"echo:later")),
            fc_models.InvokeFunctionHeaders(x_fc_invocation_type="Async"),
            RuntimeOptions(),
        )
        assert queued.status_code == 202, queued.status_code
        assert queued.headers.get("x-fc-request-id"), queued.headers

        step("an API fcx does not have answers FC's error shape (404), no hang or 500")
        err = expect_error_any(lambda: fc.list_layers(fc_models.ListLayersRequest()))
        assert err.code == "NotFound", err

    step("GetFunction of a name the SDK percent-encodes in the path")
    # The path is signed as sent (%2A, %20): a verification failure would be 403, not 404/400.
    err = expect_error_any(lambda: fc.get_function("no such*fn", fc_models.GetFunctionRequest()))
    assert err.code != "SignatureNotMatch", err

    step("DeleteFunction")
    fc.delete_function("sdk-tiny")
    expect_error(
        "FunctionNotFound",
        404,
        lambda: fc.get_function("sdk-tiny", fc_models.GetFunctionRequest()),
    )

    step("a wrong secret is SignatureNotMatch (403), parsed by the SDK")
    expect_error(
        "SignatureNotMatch",
        403,
        lambda: client(key_id, secret + "x").list_functions(
            fc_models.ListFunctionsRequest()
        ),
    )

    step("an unknown AccessKey id is InvalidAccessKeyID (403)")
    e = expect_error(
        "InvalidAccessKeyID",
        403,
        lambda: client("FCXNOSUCHKEY", secret).list_functions(
            fc_models.ListFunctionsRequest()
        ),
    )
    assert "FCXNOSUCHKEY" in str(e), e

    print("SDK OK", flush=True)


def expect_error_any(call):
    try:
        call()
    except Exception as e:
        assert getattr(e, "status_code", None) in (400, 404), f"unexpected error: {e}"
        return e
    raise AssertionError("expected an error")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"SDK FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise
