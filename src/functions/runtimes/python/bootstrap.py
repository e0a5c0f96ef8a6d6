"""rowcast's Python runtime interface client: Lambda's Runtime API on the standard library only.

Loads the handler named by _HANDLER ("module.function") from LAMBDA_TASK_ROOT, then loops: GET the next event,
call handler(event, context) with Lambda's Python context, POST the result, or Lambda's error shape
(errorMessage, errorType, stackTrace) for an exception. A failure to load the handler is posted as an init error.
Given a channel by rowcast (_ROWCAST_RUNTIME_FD), it makes the same exchanges as frames on that socket pair instead of
HTTP requests (rowcast's runtime-channel.ts).

boto3's SNS clients publish to rowcast: AWS_ENDPOINT_URL_SNS (set by rowcast) is this process's endpoint, where a
publish joins the invocation running now. botocore reads that variable only from 1.31 on, so for older ones (Debian's
python3-boto3 is 1.26) this bootstrap makes it the default endpoint_url of the SNS clients a handler creates.
"""

import decimal
import http.client
import importlib
import importlib.machinery
import json
import os
import socket
import stat
import sys
import threading
import time
import traceback

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
BASE = "/2018-06-01/runtime"


def _unreachable(e):
    print("[ERROR] the Runtime API is unreachable (%s); exiting" % e, file=sys.stderr, flush=True)
    os._exit(1)


class Connection:
    """One keep-alive connection to the Runtime API; the process ends when the API is gone (rowcast stopped)."""

    def __init__(self):
        self.conn = http.client.HTTPConnection(API)

    def request(self, method, path, body=None, headers=None):
        try:
            self.conn.request(method, BASE + path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            return response.status, dict((k.lower(), v) for k, v in response.getheaders()), response.read()
        except (OSError, http.client.HTTPException) as e:
            _unreachable(e)

    def next(self):
        return self.request("GET", "/invocation/next")

    def respond(self, request_id, payload):
        self.request("POST", "/invocation/%s/response" % request_id, payload, {"Content-Type": "application/json"})

    def error(self, request_id, error_type, body):
        self.request("POST", "/invocation/%s/error" % request_id, body, _error_headers(error_type))

    def init_error(self, error_type, body):
        self.request("POST", "/init/error", body, _error_headers(error_type))


def _error_headers(error_type):
    return {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": error_type}


class Channel:
    """The same exchanges on rowcast's own channel to this process (a socket pair; rowcast's runtime-channel.ts):
    frames of a JSON header line and a body of its "length". A response goes with the next request in one write."""

    def __init__(self, fd):
        os.set_inheritable(fd, False)
        self.sock = socket.socket(fileno=fd)
        self.reader = self.sock.makefile("rb")
        self.unsent = b""

    def _frame(self, header, body=None):
        if body is not None:
            header["length"] = len(body)
        return json.dumps(header).encode("utf-8") + b"\n" + (body or b"")

    def _send(self, data):
        try:
            self.sock.sendall(self.unsent + data)
            self.unsent = b""
        except OSError as e:
            _unreachable(e)

    def _read(self):
        try:
            line = self.reader.readline()
            if not line:
                raise OSError("rowcast closed the channel")
            header = json.loads(line)
            body = self.reader.read(header.get("length", 0))
            return header, body
        except (OSError, ValueError) as e:
            _unreachable(e)

    def next(self):
        self._send(self._frame({"op": "next"}))
        header, body = self._read()
        return 200, header["headers"], body

    def respond(self, request_id, payload):
        self.unsent += self._frame({"op": "response", "id": request_id}, payload)

    def error(self, request_id, error_type, body):
        self.unsent += self._frame({"op": "error", "id": request_id, "errorType": error_type}, body)

    def init_error(self, error_type, body):
        # Answered: rowcast has read it before this process exits.
        self._send(self._frame({"op": "init-error", "errorType": error_type}, body))
        self._read()


def runtime_api():
    """rowcast's channel when rowcast gave one (and the variable is not left to the handler), else the HTTP API."""
    fd = os.environ.pop("_ROWCAST_RUNTIME_FD", None)
    return Channel(int(fd)) if fd else Connection()


class LambdaContext:
    """What Lambda's Python runtime gives a handler as its second argument."""

    def __init__(self, request_id, deadline_ms, invoked_function_arn, client_context):
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = client_context
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message):
        sys.stdout.write(str(message))
        sys.stdout.flush()


def error_shape(error_type, message, tb=None):
    stack = traceback.format_list(traceback.extract_tb(tb)) if tb is not None else []
    return {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": stack}


def exception_shape(exc, error_type=None):
    return error_shape(error_type or type(exc).__name__, str(exc), exc.__traceback__)


def log_error(shape):
    print("[ERROR] %s: %s" % (shape["errorType"], shape["errorMessage"]), file=sys.stderr, flush=True)
    return json.dumps(shape).encode("utf-8")


def load_handler(name):
    """_HANDLER "package.module.function" (or "path/module.function") → the function; raises with Lambda's error types."""
    module_name, _, function_name = name.rpartition(".")
    if not module_name or not function_name:
        raise _InitError("Runtime.MalformedHandlerName", "Bad handler '%s': not enough values to unpack (expected 'module.function')" % name)
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as e:
        raise _InitError("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (module_name, e), e.__traceback__)
    except ImportError as e:
        raise _InitError("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (module_name, e), e.__traceback__)
    except Exception as e:
        # An exception in the module's top-level code: Lambda reports it with the exception's own type.
        raise _InitError(type(e).__name__, str(e), e.__traceback__)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise _InitError("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (function_name, module_name))
    return handler


class _InitError(Exception):
    def __init__(self, error_type, message, tb=None):
        super().__init__(message)
        self.shape = error_shape(error_type, message, tb)


def to_json(result):
    def default(o):
        if isinstance(o, decimal.Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)

    return json.dumps(result, default=default).encode("utf-8")


def _default_sns_endpoint(session_class):
    """Session.create_client(service_name, region_name, api_version, use_ssl, verify, endpoint_url, ...) for "sns",
    without an endpoint_url: AWS_ENDPOINT_URL_SNS, as newer botocore does by itself."""
    create_client = session_class.create_client
    if getattr(create_client, "_rowcast", False):
        return

    def with_rowcast_endpoint(self, service_name, *args, **kwargs):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_SNS")
        if service_name == "sns" and endpoint and len(args) < 5 and kwargs.get("endpoint_url") is None:
            kwargs["endpoint_url"] = endpoint
        return create_client(self, service_name, *args, **kwargs)

    with_rowcast_endpoint._rowcast = True
    session_class.create_client = with_rowcast_endpoint


class _BotocoreSessionHook:
    """Patches botocore.session when the handler first imports it (and costs nothing to handlers without boto3)."""

    def find_spec(self, name, path=None, target=None):
        if name != "botocore.session":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _default_sns_endpoint(module.Session)

        spec.loader.exec_module = exec_and_patch
        return spec


def route_sns_clients_to_rowcast():
    if not os.environ.get("AWS_ENDPOINT_URL_SNS"):
        return
    if "botocore.session" in sys.modules:
        _default_sns_endpoint(sys.modules["botocore.session"].Session)
    else:
        sys.meta_path.insert(0, _BotocoreSessionHook())


def exit_with_rowcast():
    """rowcast holds this process's stdin open and never writes to it: end of file means rowcast has ended."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except OSError:
        pass
    os._exit(1)


def main():
    if stat.S_ISFIFO(os.fstat(0).st_mode):
        threading.Thread(target=exit_with_rowcast, name="rowcast-watchdog", daemon=True).start()
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    # The function's code comes first on the path, not this file's folder.
    sys.path[0] = task_root
    route_sns_clients_to_rowcast()
    api = runtime_api()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except _InitError as e:
        api.init_error(e.shape["errorType"], log_error(e.shape))
        sys.exit(1)
    while True:
        status, headers, body = api.next()
        if status != 200:
            print("[ERROR] GET /invocation/next answered %d: %s; exiting" % (status, body[:200]), file=sys.stderr, flush=True)
            sys.exit(1)
        request_id = headers["lambda-runtime-aws-request-id"]
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        client_context = headers.get("lambda-runtime-client-context")
        context = LambdaContext(
            request_id,
            int(headers.get("lambda-runtime-deadline-ms", "0")),
            headers.get("lambda-runtime-invoked-function-arn"),
            json.loads(client_context) if client_context else None,
        )
        try:
            event = json.loads(body) if body else None
            result = handler(event, context)
        except Exception as e:
            shape = exception_shape(e)
            shape["requestId"] = request_id
            api.error(request_id, shape["errorType"], log_error(shape))
            continue
        try:
            payload = to_json(result)
        except (TypeError, ValueError) as e:
            shape = error_shape("Runtime.MarshalError", "Unable to marshal response: %s" % e)
            shape["requestId"] = request_id
            api.error(request_id, shape["errorType"], log_error(shape))
            continue
        api.respond(request_id, payload)


if __name__ == "__main__":
    main()
