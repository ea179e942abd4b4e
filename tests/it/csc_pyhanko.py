#!/usr/bin/env python3
"""pyHanko's CSCSigner signs a PDF through cloudca's /csc/v1 API (tests/it/csc.rs).

The platform side of the CSC flow: mutual TLS with the relying platform's certificate,
credentials/info by pyHanko itself, credentials/authorize with the hashes (SCAL 2) by the
authorisation manager below, which writes the 202 answer (handle, start_token, start_secret)
to --handoff so the Rust test can play the holder's app (claim the QR payload, approve with
the PIN), then polls credentials/authorizeCheck until the SAD comes; pyHanko then calls
signatures/signHash. With --tsa, the signature gets a timestamp from cloudca's /tsa (B-T).
"""

import argparse
import asyncio
import json
import os
import ssl
import sys

import aiohttp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers import csc_signer
from pyhanko.sign.timestamps import HTTPTimeStamper


class PhoneApproval(csc_signer.CSCAuthorizationManager):
    """authorize (202 + handle), hand the QR material over, poll authorizeCheck."""

    def __init__(self, session, info, credential, handoff):
        super().__init__(info, credential)
        self.session = session
        self.handoff = handoff

    async def authorize_signature(self, hash_b64s):
        url = self.csc_session_info.endpoint_url
        body = self.format_csc_auth_request(hash_b64s=hash_b64s, description="pyHanko CSC test")
        async with self.session.post(url("credentials/authorize"), json=body) as r:
            data = await r.json()
            if r.status != 202:
                raise RuntimeError(f"authorize: {r.status} {data}")
        tmp = self.handoff + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.rename(tmp, self.handoff)
        for _ in range(600):
            async with self.session.post(url("credentials/authorizeCheck"), json={"handle": data["handle"]}) as r:
                answer = await r.json()
                if r.status == 200:
                    return self.parse_csc_auth_response(answer)
                if r.status != 202:
                    raise RuntimeError(f"authorizeCheck: {r.status} {answer}")
            await asyncio.sleep(0.2)
        raise RuntimeError("the holder never approved")


async def main(a):
    tls = ssl.create_default_context(cafile=a.cacert)
    tls.load_cert_chain(a.cert, a.key)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
        info = csc_signer.CSCServiceSessionInfo(a.api, a.credential, api_ver="v1")
        credential = await csc_signer.fetch_certs_in_csc_credential(session, info)
        auth = PhoneApproval(session, info, credential, a.handoff)
        signer = csc_signer.CSCSigner(session, auth_manager=auth)
        meta = signers.PdfSignatureMetadata(
            field_name="Signature", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
        )
        timestamper = None
        if a.tsa:
            timestamper = HTTPTimeStamper(a.tsa)
        pdf_signer = signers.PdfSigner(meta, signer, timestamper=timestamper)
        with open(a.input, "rb") as inf, open(a.output, "wb") as outf:
            await pdf_signer.async_sign_pdf(IncrementalPdfFileWriter(inf), output=outf)
    print("signed")


def minimal_pdf(path):
    """A one-page PDF with a line of text, offsets computed."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        None,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    text = b"BT /F1 18 Tf 72 760 Td (Bid for tender 2026-117) Tj ET"
    objects[3] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text)
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for o in offsets:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    with open(path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True, help="https://localhost:PORT (the api listener)")
    p.add_argument("--cacert", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--credential", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--handoff", required=True)
    p.add_argument("--tsa", help="URL of cloudca's /tsa, for a B-T signature")
    args = p.parse_args()
    if not os.path.exists(args.input):
        minimal_pdf(args.input)
    try:
        asyncio.run(main(args))
    except Exception as e:  # the test prints this
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
