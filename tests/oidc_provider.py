"""A small OpenID Connect provider on loopback for the sign-in tests.

It serves the discovery document, its signing keys (JWKS), an authorization endpoint that
approves whoever the test says is signing in (``provider.person``) and sends the browser
back with a code, and a token endpoint that checks the client's credentials, the code and
the redirect address, and answers with an RS256-signed ID token carrying the nonce it was
given. ``provider.tamper`` makes it misbehave in one named way, to test that the service
refuses it: "nonce" (another nonce), "key" (signed with a key it does not publish),
"audience" (issued to another client), "issuer" (another issuer), "expired".
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey


class Provider:
    def __init__(self, client_id: str = "kb-test", client_secret: str = "provider-secret"):
        self.client_id, self.client_secret = client_id, client_secret
        self.key = RSAKey.generate_key(
            2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"}
        )
        self.other_key = RSAKey.generate_key(
            2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"}
        )
        self.person: dict[str, Any] = {
            "sub": "u-1",
            "preferred_username": "olga",
            "roles": ["agent"],
        }
        self.tamper = ""
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Provider:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return 400, {}, b"unknown client or response type"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "redirect_uri": query.get("redirect_uri", ""),
            "nonce": query.get("nonce", ""),
            "person": dict(self.person),
        }
        back = (
            query["redirect_uri"] + "?" + urlencode({"code": code, "state": query.get("state", "")})
        )
        return 302, {"Location": back}, b""

    def _client_ok(self, headers, form: dict[str, str]) -> bool:
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            user, password = form.get("client_id", ""), form.get("client_secret", "")
        return user == self.client_id and password == self.client_secret

    def token(self, headers, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests += 1
        if not self._client_ok(headers, form):
            return 401, {"error": "invalid_client"}
        grant = self.codes.pop(form.get("code", ""), None)
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant["redirect_uri"] != form.get("redirect_uri")
        ):
            return 400, {"error": "invalid_grant"}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **grant["person"],
        }
        key = self.key
        if self.tamper == "nonce":
            claims["nonce"] = "another-nonce"
        elif self.tamper == "audience":
            claims["aud"] = "another-client"
        elif self.tamper == "issuer":
            claims["iss"] = "http://127.0.0.1:1"
        elif self.tamper == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 1800
        elif self.tamper == "key":
            key = self.other_key
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)
        return 200, {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(
                self,
                status: int,
                headers: dict[str, str],
                body: bytes,
                content_type: str = "application/json",
            ) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._send(200, {}, json.dumps(provider.metadata()).encode())
                elif url.path == "/jwks":
                    keys = KeySet([provider.key]).as_dict(private=False)
                    self._send(200, {}, json.dumps(keys).encode())
                elif url.path == "/authorize":
                    status, headers, body = provider.authorize(query)
                    self._send(status, headers, body, "text/plain")
                else:
                    self._send(404, {}, b"{}")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path == "/token":
                    status, payload = provider.token(self.headers, form)
                    self._send(status, {"Cache-Control": "no-store"}, json.dumps(payload).encode())
                else:
                    self._send(404, {}, b"{}")

        return Handler
