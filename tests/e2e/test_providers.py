"""Every client format against a model on every provider family (task 3).

One mock provider plays OpenAI, Anthropic, Google AI Studio, Azure OpenAI
(key and Azure AD), AWS Bedrock (SigV4, event streams), Vertex AI (Gemini and
Claude, service-account tokens), Groq and DeepSeek. One gateway is configured
with all of them; the official OpenAI, Anthropic and Google Gen AI SDKs call
each one plainly, streamed, with tools and with images. Upstream
authentication is checked by independent implementations: botocore
recomputes each SigV4 signature and PyJWT verifies the Vertex assertion.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import anthropic
import jwt
import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.genai import types as gtypes

from e2e_support import Gateway, MockProvider, Secret, marker, mock_reply, new_provider_key

AWS_REGION = "us-east-1"
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


@dataclass(frozen=True)
class Route:
    """A model alias and where it must land."""

    alias: str
    provider: str
    path_part: str  # a fragment of the upstream path the mock must see


ROUTES = [
    Route("m-openai", "oai", "/v1/chat/completions"),
    Route("m-anthropic", "ant", "/v1/messages"),
    Route("m-gemini", "gem", "/v1beta/models/gemini-2.5-flash:"),
    Route("m-azure", "az", "/openai/deployments/prod-4o/chat/completions"),
    Route("m-azure-ad", "azad", "/openai/deployments/gpt-4o/chat/completions"),
    Route("m-bedrock", "br", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
    Route("m-vertex-gemini", "vx", "/publishers/google/models/gemini-2.5-flash:"),
    Route("m-vertex-claude", "vx", "/publishers/anthropic/models/claude-sonnet-4-5:"),
    Route("m-groq", "groq", "/v1/chat/completions"),
    Route("m-deepseek", "deepseek", "/v1/chat/completions"),
]
ROUTE_IDS = [r.alias for r in ROUTES]
CLIENTS = ["openai", "anthropic", "google"]

# A 1x1 PNG, built here so no binary fixture is committed.
def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


PNG = _png()
PNG_B64 = base64.b64encode(PNG).decode()
TOOL_SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


@dataclass
class Matrix:
    gateway: Gateway
    mock: MockProvider
    key: Secret
    aws: dict[str, Secret]
    sa_public_pem: bytes
    sa_email: str
    token_uri: str
    env: dict[str, str]
    tmp: Path
    logs: Path


def _service_account(tmp: Path, mock_url: str) -> tuple[Path, bytes, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    email = f"e2e-{secrets.token_hex(4)}@keygate-e2e.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": "keygate-e2e",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": f"{mock_url}/o/oauth2/auth",
        "token_uri": f"{mock_url}/token",
    }
    path = tmp / "service-account.json"
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    return path, public, email


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Matrix]:
    tmp = tmp_path_factory.mktemp("providers")
    aws = {
        "id": Secret("AKIA" + secrets.token_hex(8).upper()),
        "secret": new_provider_key(""),
        "token": new_provider_key("session-"),
    }
    azure_ad_secret = new_provider_key("azure-ad-")
    azure_key = new_provider_key("azure-")
    mock = MockProvider(
        logs_dir,
        extra_args=[
            "--aws-access-key-id", aws["id"],
            "--aws-secret-access-key", aws["secret"],
            "--aws-session-token", aws["token"],
        ],
        name="mock-providers",
    )
    mock.http.put(
        "/_mock/config",
        json={
            "azure_api_key": azure_key,
            "azure_client_id": "e2e-client",
            "azure_client_secret": azure_ad_secret,
            # Tests count token fetches over the whole module's traffic.
            "record_limit": 100_000,
        },
    ).raise_for_status()
    sa_path, sa_public, sa_email = _service_account(tmp, mock.url)
    # The AWS secret key comes from a mounted file (the access key id and
    # session token from the standard variables).
    aws_secret_file = tmp / "aws-secret"
    aws_secret_file.write_text(aws["secret"] + "\n")
    aws_secret_file.chmod(0o600)
    config = tmp / "keygate.toml"
    aliases = {
        "m-openai": "oai/gpt-4o",
        "m-anthropic": "ant/claude-sonnet-4-5",
        "m-gemini": "gem/gemini-2.5-flash",
        "m-azure": "az/gpt-4o",
        "m-azure-ad": "azad/gpt-4o",
        "m-bedrock": f"br/{BEDROCK_MODEL}",
        "m-vertex-gemini": "vx/gemini-2.5-flash",
        "m-vertex-claude": "vx/claude-sonnet-4-5",
        "m-groq": "groq/llama-3.3-70b-versatile",
        "m-deepseek": "deepseek/deepseek-chat",
    }
    config.write_text(
        "[aliases]\n"
        + "".join(f'"{k}" = "{v}"\n' for k, v in aliases.items())
        + f"""
[[providers]]
name = "oai"
kind = "openai"
base_url = "{mock.url}/v1"
api_key_env = "E2E_OAI_KEY"

[[providers]]
name = "ant"
kind = "anthropic"
base_url = "{mock.url}"
api_key_env = "E2E_ANT_KEY"

[[providers]]
name = "gem"
kind = "gemini"
base_url = "{mock.url}"
api_key_env = "E2E_GEM_KEY"

[[providers]]
name = "az"
kind = "azure"
base_url = "{mock.url}"
api_key_env = "E2E_AZ_KEY"
deployments = {{ "gpt-4o" = "prod-4o" }}

[[providers]]
name = "azad"
kind = "azure"
base_url = "{mock.url}"
azure_ad = {{ tenant_id = "e2e-tenant", client_id = "e2e-client", client_secret_env = "E2E_AZAD_SECRET", authority_url = "{mock.url}" }}

[[providers]]
name = "br"
kind = "bedrock"
base_url = "{mock.url}"
region = "{AWS_REGION}"
aws_secret_access_key = {{ file = "{aws_secret_file}" }}

[[providers]]
name = "vx"
kind = "vertex"
base_url = "{mock.url}"
location = "us-central1"
service_account_file = "{sa_path}"
"""
    )
    env = {
        "KEYGATE_CONFIG": str(config),
        "E2E_OAI_KEY": new_provider_key("sk-proj-"),
        "E2E_ANT_KEY": new_provider_key("sk-ant-api03-"),
        "E2E_GEM_KEY": new_provider_key("AIza"),
        "E2E_AZ_KEY": azure_key,
        "E2E_AZAD_SECRET": azure_ad_secret,
        "AWS_ACCESS_KEY_ID": aws["id"],
        "AWS_SESSION_TOKEN": aws["token"],
        "GROQ_API_KEY": new_provider_key("gsk_"),
        "GROQ_BASE_URL": f"{mock.url}/v1",
        "DEEPSEEK_API_KEY": new_provider_key("sk-"),
        "DEEPSEEK_BASE_URL": f"{mock.url}/v1",
    }
    gw = Gateway(
        backend="sqlite",
        data_dir=tmp / "data",
        db_url=None,
        log_dir=logs_dir,
        providers=None,
        extra_env=env,
        name="gateway-providers",
    )
    try:
        key = gw.create_key()["key"]
        yield Matrix(gw, mock, key, aws, sa_public, sa_email, f"{mock.url}/token", env, tmp, logs_dir)
    finally:
        gw.stop()
        mock.stop()


# ------------------------------------------------------------ the clients --


@dataclass
class Reply:
    text: str
    tool_calls: list[tuple[str, dict[str, Any]]]
    stop: str
    input_tokens: int
    output_tokens: int


def _google(m: Matrix) -> genai.Client:
    return genai.Client(
        api_key=m.key,
        http_options=gtypes.HttpOptions(base_url=m.gateway.url, api_version="v1beta", timeout=30_000),
    )


def ask(
    m: Matrix,
    client: str,
    model: str,
    text: str,
    *,
    stream: bool = False,
    tools: bool = False,
    image: bool = False,
    system: str | None = None,
    history: list[Any] | None = None,
) -> Reply:
    """One request through `client`'s SDK; the answer in a common shape."""
    if client == "openai":
        content: Any = text
        if image:
            content = [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            ]
        messages: list[Any] = [{"role": "system", "content": system}] if system else []
        messages += history or []
        messages.append({"role": "user", "content": content})
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": 200}
        if tools:
            kwargs["tools"] = [
                {"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": TOOL_SCHEMA}}
            ]
        oai = m.gateway.openai(m.key)
        try:
            if not stream:
                r = oai.chat.completions.create(**kwargs)
                msg = r.choices[0].message
                calls = [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls or []]
                return Reply(msg.content or "", calls, r.choices[0].finish_reason, r.usage.prompt_tokens, r.usage.completion_tokens)
            parts: list[str] = []
            args: dict[int, list[str]] = {}
            names: dict[int, str] = {}
            finish = ""
            usage = None
            for chunk in oai.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}):
                if chunk.usage:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                    for call in choice.delta.tool_calls or []:
                        if call.function and call.function.name:
                            names[call.index] = call.function.name
                        if call.function and call.function.arguments:
                            args.setdefault(call.index, []).append(call.function.arguments)
                    if choice.finish_reason:
                        finish = choice.finish_reason
            assert usage is not None, "the stream carried usage"
            calls = [(names[i], json.loads("".join(args.get(i, ["{}"])))) for i in sorted(names)]
            return Reply("".join(parts), calls, finish, usage.prompt_tokens, usage.completion_tokens)
        finally:
            oai.close()

    if client == "anthropic":
        content = text
        if image:
            content = [
                {"type": "text", "text": text},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            ]
        messages = list(history or []) + [{"role": "user", "content": content}]
        kwargs = {"model": model, "messages": messages, "max_tokens": 200}
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = [{"name": "lookup", "description": "Look up", "input_schema": TOOL_SCHEMA}]
        ant = m.gateway.anthropic(m.key)
        try:
            if stream:
                with ant.messages.stream(**kwargs) as s:
                    for _ in s:
                        pass
                    msg = s.get_final_message()
            else:
                msg = ant.messages.create(**kwargs)
            texts = "".join(b.text for b in msg.content if b.type == "text")
            calls = [(b.name, b.input) for b in msg.content if b.type == "tool_use"]
            return Reply(texts, calls, msg.stop_reason, msg.usage.input_tokens, msg.usage.output_tokens)
        finally:
            ant.close()

    assert client == "google"
    parts_in: list[Any] = [gtypes.Part(text=text)]
    if image:
        parts_in.append(gtypes.Part.from_bytes(data=PNG, mime_type="image/png"))
    contents = list(history or []) + [gtypes.Content(role="user", parts=parts_in)]
    config = gtypes.GenerateContentConfig(max_output_tokens=200, system_instruction=system)
    if tools:
        config.tools = [
            gtypes.Tool(
                function_declarations=[
                    gtypes.FunctionDeclaration(name="lookup", description="Look up", parameters_json_schema=TOOL_SCHEMA)
                ]
            )
        ]
        config.automatic_function_calling = gtypes.AutomaticFunctionCallingConfig(disable=True)
    g = _google(m)
    try:
        if stream:
            chunks = list(g.models.generate_content_stream(model=model, contents=contents, config=config))
            assert chunks, "the stream carried chunks"
            text_out = "".join(c.text or "" for c in chunks)
            calls = [(fc.name, dict(fc.args or {})) for c in chunks for fc in (c.function_calls or [])]
            last = chunks[-1]
        else:
            last = g.models.generate_content(model=model, contents=contents, config=config)
            text_out = last.text or ""
            calls = [(fc.name, dict(fc.args or {})) for fc in (last.function_calls or [])]
        usage = last.usage_metadata
        finish = last.candidates[0].finish_reason.name if last.candidates and last.candidates[0].finish_reason else ""
        return Reply(text_out, calls, finish, usage.prompt_token_count or 0, usage.candidates_token_count or 0)
    finally:
        g.close()


# ------------------------------------------------------------- the matrix --


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_text(matrix: Matrix, client: str, route: Route, stream: bool) -> None:
    text = f"hello {route.provider} {marker()}"
    reply = ask(matrix, client, route.alias, text, stream=stream, system="Be brief.")
    assert reply.text == mock_reply(text)
    assert reply.stop in {"stop", "end_turn", "STOP"}
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    (rec,) = matrix.mock.requests_containing(text)
    assert route.path_part in rec["path"], rec["path"]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_tools(matrix: Matrix, client: str, route: Route, stream: bool) -> None:
    text = f"look this up {marker()}"
    reply = ask(matrix, client, route.alias, text, stream=stream, tools=True)
    assert reply.tool_calls == [("lookup", {"query": text})]
    assert reply.stop in {"tool_calls", "tool_use", "STOP"}


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("client", CLIENTS)
def test_tool_results_round_trip(matrix: Matrix, client: str, route: Route) -> None:
    question = f"what is {marker()}"
    result = f"forty-two {marker()}"
    if client == "openai":
        history: list[Any] = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"query": question})}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": result},
        ]
        oai = matrix.gateway.openai(matrix.key)
        try:
            r = oai.chat.completions.create(
                model=route.alias,
                messages=history,
                tools=[{"type": "function", "function": {"name": "lookup", "parameters": TOOL_SCHEMA}}],
            )
        finally:
            oai.close()
        assert r.choices[0].message.content == f"Tool result: {result}"
    elif client == "anthropic":
        ant = matrix.gateway.anthropic(matrix.key)
        try:
            msg = ant.messages.create(
                model=route.alias,
                max_tokens=100,
                tools=[{"name": "lookup", "input_schema": TOOL_SCHEMA}],
                messages=[
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"query": question}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": result}]},
                ],
            )
        finally:
            ant.close()
        assert msg.content[0].text == f"Tool result: {result}"
    else:
        g = _google(matrix)
        try:
            r = g.models.generate_content(
                model=route.alias,
                contents=[
                    gtypes.Content(role="user", parts=[gtypes.Part(text=question)]),
                    gtypes.Content(role="model", parts=[gtypes.Part.from_function_call(name="lookup", args={"query": question})]),
                    gtypes.Content(role="user", parts=[gtypes.Part.from_function_response(name="lookup", response={"result": result})]),
                ],
                config=gtypes.GenerateContentConfig(
                    tools=[gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(name="lookup", parameters_json_schema=TOOL_SCHEMA)])],
                    automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
                ),
            )
        finally:
            g.close()
        assert result in (r.text or "")


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_images(matrix: Matrix, client: str, route: Route, stream: bool) -> None:
    text = f"what is in this picture {marker()}"
    reply = ask(matrix, client, route.alias, text, stream=stream, image=True)
    assert reply.text.endswith("[images: 1]"), reply.text


@pytest.mark.parametrize("alias", ["m-gemini", "m-bedrock", "m-vertex-gemini"])
def test_image_urls_where_the_provider_cannot_fetch_them_are_a_clear_400(matrix: Matrix, alias: str) -> None:
    oai = matrix.gateway.openai(matrix.key)
    try:
        with pytest.raises(openai.BadRequestError) as err:
            oai.chat.completions.create(
                model=alias,
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ]}],
            )
    finally:
        oai.close()
    assert "image URL" in str(err.value)
    assert not matrix.mock.requests_containing("example.com/cat.png")


def test_a_parameter_the_provider_lacks_is_a_clear_400(matrix: Matrix) -> None:
    oai = matrix.gateway.openai(matrix.key)
    try:
        with pytest.raises(openai.BadRequestError) as err:
            oai.chat.completions.create(
                model="m-anthropic",
                messages=[{"role": "user", "content": "hi"}],
                logprobs=True,
            )
    finally:
        oai.close()
    assert "logprobs" in str(err.value)


def test_stop_sequences_and_max_tokens_translate(matrix: Matrix) -> None:
    ant = matrix.gateway.anthropic(matrix.key)
    try:
        text = f"alpha beta gamma delta {marker()}"
        cut = ant.messages.create(model="m-openai", max_tokens=3, messages=[{"role": "user", "content": text}])
        assert cut.stop_reason == "max_tokens"
        assert len(cut.content[0].text.split()) == 3
        # Bedrock names the stop sequence that matched (Gemini and OpenAI
        # report a plain stop), and the Anthropic client sees it as such.
        stopped = ant.messages.create(
            model="m-bedrock", max_tokens=100, stop_sequences=["gamma"], messages=[{"role": "user", "content": text}]
        )
        assert stopped.stop_reason == "stop_sequence"
        assert "gamma" not in stopped.content[0].text
        rec = _last_request(matrix, text)
        assert json.loads(rec["body"])["inferenceConfig"]["stopSequences"] == ["gamma"]
    finally:
        ant.close()
    oai = matrix.gateway.openai(matrix.key)
    try:
        text = f"one two three four {marker()}"
        r = oai.chat.completions.create(
            model="m-gemini", max_tokens=2, stop=["three"], messages=[{"role": "user", "content": text}]
        )
        assert r.choices[0].finish_reason == "length"
        rec = _last_request(matrix, text)
        config = json.loads(rec["body"])["generationConfig"]
        assert config["maxOutputTokens"] == 2 and config["stopSequences"] == ["three"]
    finally:
        ant.close()


# ------------------------------------------- upstream auth, independently --


def _last_request(m: Matrix, text: str) -> dict[str, Any]:
    found = m.mock.requests_containing(text)
    assert found, "the mock saw the request"
    return found[-1]


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_bedrock_sigv4_verified_by_botocore(matrix: Matrix, stream: bool) -> None:
    text = f"sign this {marker()}"
    reply = ask(matrix, "openai", "m-bedrock", text, stream=stream)
    assert reply.text == mock_reply(text)
    rec = _last_request(matrix, text)
    headers = {k.lower(): v for k, v in rec["headers"].items()}
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 ")
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    signed = fields["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert fields["Credential"].startswith(f"{matrix.aws['id']}/")
    assert fields["Credential"].endswith(f"/{AWS_REGION}/bedrock/aws4_request")

    # botocore recomputes the signature from the request as the mock saw it.
    url = f"{matrix.mock.url}{rec['path']}" + (f"?{rec['query']}" if rec.get("query") else "")
    request = AWSRequest(
        method=rec["method"],
        url=url,
        data=rec["body"].encode(),
        headers={name: headers[name] for name in signed if name != "host"},
    )
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(matrix.aws["id"], matrix.aws["secret"], matrix.aws["token"]), "bedrock", AWS_REGION)
    # botocore's own canonical request and string to sign, not keygate's.
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    assert fields["Signature"] == expected


def test_vertex_assertion_verified_by_pyjwt(matrix: Matrix) -> None:
    text = f"vertex token {marker()}"
    assert ask(matrix, "anthropic", "m-vertex-gemini", text).text == mock_reply(text)
    token_requests = [r for r in matrix.mock.requests() if r["path"] == "/token"]
    assert token_requests, "keygate exchanged an assertion for a token"
    form = parse_qs(token_requests[-1]["body"])
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = jwt.decode(
        form["assertion"][0],
        matrix.sa_public_pem,
        algorithms=["RS256"],
        audience=matrix.token_uri,
        # gcp_auth sends `"sub": null` (no impersonation); Google accepts it.
        options={"require": ["iss", "aud", "exp", "iat"], "verify_sub": False},
    )
    assert claims["iss"] == matrix.sa_email
    assert "https://www.googleapis.com/auth/cloud-platform" in claims["scope"].split()
    assert claims["exp"] - claims["iat"] <= 3600
    # The token is cached: more Vertex calls need no new assertion.
    before = len(token_requests)
    for _ in range(3):
        ask(matrix, "openai", "m-vertex-claude", f"again {marker()}")
    assert len([r for r in matrix.mock.requests() if r["path"] == "/token"]) == before
    rec = _last_request(matrix, "again")
    assert rec["headers"]["authorization"].startswith("Bearer ")
    body = json.loads(rec["body"])
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body


def test_each_provider_gets_its_own_authentication(matrix: Matrix) -> None:
    expectations = {
        "m-openai": lambda h: h["authorization"].startswith("Bearer sk-proj-"),
        "m-anthropic": lambda h: h["x-api-key"].startswith("sk-ant-api03-") and h["anthropic-version"],
        "m-gemini": lambda h: h["x-goog-api-key"].startswith("AIza") and "authorization" not in h,
        "m-azure": lambda h: h["api-key"].startswith("azure-") and "authorization" not in h,
        "m-azure-ad": lambda h: h["authorization"].startswith("Bearer ") and "api-key" not in h,
        "m-groq": lambda h: h["authorization"].startswith("Bearer gsk_"),
    }
    for alias, check in expectations.items():
        text = f"auth {alias} {marker()}"
        ask(matrix, "openai", alias, text)
        rec = _last_request(matrix, text)
        headers = {k.lower(): v for k, v in rec["headers"].items()}
        assert check(headers), alias
        assert matrix.key not in json.dumps(rec), "the keygate key never reaches a provider"
    azure_rec = _last_request(matrix, "auth m-azure ")
    assert parse_qs(urlsplit("?" + (azure_rec.get("query") or "")).query)["api-version"]


@pytest.mark.parametrize(
    "alias, setting, token_path",
    [
        ("m-azure-ad", "azure_token_lifetime_s", "/e2e-tenant/oauth2/v2.0/token"),
        ("m-vertex-gemini", "google_token_lifetime_s", "/token"),
    ],
)
def test_short_lived_tokens_are_renewed_before_they_expire(matrix: Matrix, alias: str, setting: str, token_path: str) -> None:
    def fetches() -> int:
        return len([r for r in matrix.mock.requests() if r["path"] == token_path])

    # A gateway of its own, so no token is cached from earlier tests.
    gw = Gateway(
        backend="sqlite",
        data_dir=matrix.tmp / f"data-{alias}",
        db_url=None,
        log_dir=matrix.logs,
        providers=None,
        extra_env=matrix.env,
        name=f"gateway-tokens-{alias}",
    )
    own = Matrix(**{**matrix.__dict__, "gateway": gw, "key": gw.create_key()["key"]})

    def ask_ok() -> None:
        text = f"token {alias} {marker()}"
        assert ask(own, "openai", alias, text).text == mock_reply(text)

    try:
        # Tokens that live 15 s are inside keygate's (Azure: 60 s) and
        # gcp_auth's (Vertex: 20 s) renewal margin: each request gets a
        # fresh one instead of sending one about to expire.
        matrix.mock.http.put("/_mock/config", json={setting: 15}).raise_for_status()
        before = fetches()
        for _ in range(3):
            ask_ok()
        assert fetches() == before + 3
        # Long-lived tokens are cached: one fetch, then none per request.
        matrix.mock.http.put("/_mock/config", json={setting: 3600}).raise_for_status()
        ask_ok()
        before = fetches()
        for _ in range(3):
            ask_ok()
        assert fetches() == before
    finally:
        matrix.mock.http.put("/_mock/config", json={setting: 3600}).raise_for_status()
        gw.stop()


@pytest.mark.parametrize("alias, path_part", [("m-openai", "/v1/embeddings"), ("m-azure", "/openai/deployments/prod-4o/embeddings")])
def test_embeddings_reach_openai_format_providers(matrix: Matrix, alias: str, path_part: str) -> None:
    text = f"embed me {marker()}"
    oai = matrix.gateway.openai(matrix.key)
    try:
        r = oai.embeddings.create(model=alias, input=text)
    finally:
        oai.close()
    assert len(r.data) == 1 and len(r.data[0].embedding) > 0
    (rec,) = matrix.mock.requests_containing(text)
    assert path_part in rec["path"]


def test_embeddings_on_a_provider_without_them_are_a_clear_400(matrix: Matrix) -> None:
    oai = matrix.gateway.openai(matrix.key)
    try:
        with pytest.raises(openai.BadRequestError) as err:
            oai.embeddings.create(model="m-anthropic", input="x")
    finally:
        oai.close()
    assert "/v1/embeddings" in str(err.value)
