"""PII detection and masking for prompts (and optionally completions).

Detectors: e-mail addresses, phone numbers, payment card numbers (Luhn-checked),
IBANs (ISO 13616 mod-97 checked), US SSNs and IPv4/IPv6 addresses. Checksums cut
false positives: a random 16-digit number is not masked unless it passes Luhn.

Modes:
  mask   - replace each finding with a typed placeholder, e.g. "[EMAIL]", so the
           model still sees that an address was there;
  redact - replace each finding with "[REDACTED]", hiding even the type;
  reject - refuse the request (400) naming only the types found.
Findings are counted in metrics by type; the matched text is never logged.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_PHONE = re.compile(r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?![ .-]?\d)")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_IPV6 = re.compile(r"(?<![:\w])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![:\w])")

ALL_TYPES = ("email", "phone", "card", "iban", "ssn", "ip")


def luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        alt = not alt
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in rearranged)
    return int(num) % 97 == 1


def _valid_ipv6(s: str) -> bool:
    try:
        ipaddress.IPv6Address(s)
        return True
    except ValueError:
        return False


@dataclass
class Finding:
    type: str
    start: int
    end: int


class PIIFilter:
    # Order matters: the more specific, checksum-backed detectors claim their
    # spans first, so a card number is not also reported as a phone number.
    def __init__(self, mode: str = "mask", types: str | list[str] = ALL_TYPES):
        if isinstance(types, str):
            types = [t.strip() for t in types.split(",") if t.strip()]
        unknown = set(types) - set(ALL_TYPES)
        if unknown:
            raise ValueError(f"unknown PII types: {sorted(unknown)}")
        self.mode, self.types = mode, set(types)

    def find(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        taken: list[tuple[int, int]] = []

        def add(kind: str, m: re.Match) -> None:
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                return
            taken.append((s, e))
            found.append(Finding(kind, s, e))

        if "email" in self.types:
            for m in _EMAIL.finditer(text):
                add("email", m)
        if "iban" in self.types:
            for m in _IBAN.finditer(text):
                if iban_ok(m.group()):
                    add("iban", m)
        if "card" in self.types:
            for m in _CARD.finditer(text):
                digits = re.sub(r"\D", "", m.group())
                if 13 <= len(digits) <= 19 and luhn_ok(digits):
                    add("card", m)
        if "ssn" in self.types:
            for m in _SSN.finditer(text):
                add("ssn", m)
        if "ip" in self.types:
            for m in _IPV4.finditer(text):
                add("ip", m)
            for m in _IPV6.finditer(text):
                if _valid_ipv6(m.group()):
                    add("ip", m)
        if "phone" in self.types:
            for m in _PHONE.finditer(text):
                if sum(c.isdigit() for c in m.group()) >= 7:
                    add("phone", m)
        found.sort(key=lambda f: f.start)
        return found

    def apply(self, text: str) -> tuple[str, list[Finding]]:
        """Return (masked text, findings). In reject mode the text is returned unchanged."""
        findings = self.find(text)
        if not findings or self.mode == "reject":
            return text, findings
        out, pos = [], 0
        for f in findings:
            out.append(text[pos:f.start])
            out.append(f"[{f.type.upper()}]" if self.mode == "mask" else "[REDACTED]")
            pos = f.end
        out.append(text[pos:])
        return "".join(out), findings
