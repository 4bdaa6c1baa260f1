#!/usr/bin/env python3
"""A throwaway SMTP server on loopback that keeps every message it accepts as a file.

One script for both users of it: the alerts tests (testkit/src/smtp.rs starts it) and
scripts/demo, which shows the alert mail that monitord sent. It uses Python's `aiosmtpd`
(Debian: python3-aiosmtpd; scripts/test and scripts/demo install it).

Commands:
  smtp_sink.py serve PORT OUTDIR [REJECT [MODE [CERT KEY]]]
      Listens on 127.0.0.1:PORT (0: any free port) and prints `listening on <port>` once
      ready. Each accepted message becomes OUTDIR/<ns>-<pid>.json: subject and plain-text
      body (decoded), envelope sender and recipients, the raw data, whether the session was
      under TLS, and when it was accepted (written to a .tmp name, then renamed).
      REJECT: comma-separated recipients answered `550` at RCPT ("" for none).
      MODE: plain (default), starttls (offered and required before MAIL) or tls (from the
      first byte); both TLS modes need CERT and KEY (PEM).
      With SMTP_TEST_USER and SMTP_TEST_PASSWORD in the environment, AUTH (PLAIN or LOGIN)
      with them is required before MAIL.
      SMTP_TEST_DEFER: comma-separated recipients answered `451` at RCPT, every time.
      SMTP_TEST_REFUSE_FROM: comma-separated senders answered `550` at MAIL FROM.
      SMTP_TEST_REFUSE_EHLO=1: EHLO (and HELO) answered `554`: the session is refused.
      SMTP_TEST_HOLD_S: seconds to wait after storing a message before answering `250` to
      its DATA (a client that dies meanwhile has delivered the mail without learning it).
  smtp_sink.py show OUTDIR
      Prints every message in OUTDIR, oldest first, as a mail reader would: the main
      headers, then the decoded plain-text body.
"""

import email
import email.policy
import json
import logging
import os
import sys
import time
import traceback
import warnings

SHOWN_HEADERS = ("Date", "From", "To", "Subject", "Message-ID")


def quiet_the_expected():
    """Silences what aiosmtpd prints about choices this test server makes on purpose, so that
    a test run that passes prints nothing from it and a real failure stands out:
    - AUTH without TLS (the tests of AUTH over a plain loopback session): a UserWarning and
      a log line at every start;
    - `Session.login_data is deprecated`, which aiosmtpd itself logs on every successful AUTH.
    Everything else aiosmtpd logs at WARNING or above still reaches stderr, and so do a bind
    error (an exception out of serve) and a failure of the handler (handle_exception below)."""
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    expected = ("auth_required == True but auth_require_tls == False",
                "Session.login_data is deprecated")

    def not_expected(record):
        return not record.getMessage().startswith(expected)

    logging.getLogger("mail.log").addFilter(not_expected)


def serve(port, outdir, reject, mode, cert, key):
    import asyncio
    import ssl

    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, TLSSetupException

    quiet_the_expected()

    user, password = os.environ.get("SMTP_TEST_USER"), os.environ.get("SMTP_TEST_PASSWORD")
    defer = set(filter(None, os.environ.get("SMTP_TEST_DEFER", "").split(",")))
    refuse_from = set(filter(None, os.environ.get("SMTP_TEST_REFUSE_FROM", "").split(",")))
    refuse_ehlo = os.environ.get("SMTP_TEST_REFUSE_EHLO") == "1"
    hold = float(os.environ.get("SMTP_TEST_HOLD_S", "0"))

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == user and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False)

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            if refuse_ehlo:
                return ["554 5.7.1 no service for you"]
            session.host_name = hostname
            return responses

        async def handle_HELO(self, server, session, envelope, hostname):
            if refuse_ehlo:
                return "554 5.7.1 no service for you"
            session.host_name = hostname
            return "250 localhost"

        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            if address in refuse_from:
                return "550 5.7.1 <%s>: sender not allowed to relay" % address
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            return "250 OK"

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address in reject:
                return "550 5.1.1 <%s>: mailbox unavailable" % address
            if address in defer:
                return "451 4.3.0 <%s>: try again later" % address
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            now = time.time()
            name = "%d-%d.json" % (time.time_ns(), os.getpid())
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            part = msg.get_body(("plain",))
            record = {
                "subject": str(msg["subject"] or ""),
                "body": part.get_content() if part is not None else "",
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "accepted_at": now,
            }
            tmp = os.path.join(outdir, name + ".tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.rename(tmp, os.path.join(outdir, name))
            if hold:
                await asyncio.sleep(hold)
            return "250 OK queued"

        async def handle_exception(self, error):
            # A STARTTLS handshake the client broke off (the tests of a client that does not
            # trust our certificate expect exactly that): aiosmtpd closes the connection.
            if isinstance(error, TLSSetupException):
                return "421 4.7.0 TLS handshake failed"
            # Anything else is a failure of this server: show it whole.
            print("smtp_sink: error in an SMTP session:", file=sys.stderr)
            traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
            return "500 Error: (%s) %s" % (type(error).__name__, error)

    async def main():
        ctx = None
        if cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
        loop = asyncio.get_running_loop()
        starttls = ctx if mode == "starttls" else None
        server = await loop.create_server(
            lambda: SMTP(Handler(), hostname="localhost", tls_context=starttls,
                         require_starttls=starttls is not None, auth_require_tls=False,
                         authenticator=authenticate if user else None, auth_required=bool(user)),
            host="127.0.0.1", port=port, reuse_address=True,
            ssl=ctx if mode == "tls" else None)
        print("listening on %d" % server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def show(outdir):
    names = sorted(n for n in os.listdir(outdir) if n.endswith(".json"))
    for i, name in enumerate(names):
        with open(os.path.join(outdir, name)) as f:
            record = json.load(f)
        msg = email.message_from_string(record["data"], policy=email.policy.default)
        if i:
            print()
        print("--- mail %d of %d, accepted for %s" % (i + 1, len(names), ", ".join(record["rcpt_tos"])))
        for header in SHOWN_HEADERS:
            if msg[header] is not None:
                print("%s: %s" % (header, msg[header]))
        print()
        print(record["body"].rstrip("\n"))


def usage():
    sys.exit(__doc__.split("Commands:", 1)[1].rstrip())


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "serve":
        mode = args[4] if len(args) > 4 else "plain"
        if mode not in ("plain", "starttls", "tls") or (mode != "plain") != (len(args) == 7):
            usage()
        serve(int(args[1]), args[2], set(filter(None, (args[3] if len(args) > 3 else "").split(","))),
              mode, args[5] if mode != "plain" else None, args[6] if mode != "plain" else None)
    elif len(args) == 2 and args[0] == "show":
        show(args[1])
    else:
        usage()
