#!/usr/bin/env python3
"""Build the `keygate scan` benchmark corpus (see bench/README.md).

    python3 bench/scan_corpus.py OUT_DIR MANIFEST.json [MEGABYTES] [PLANTS_PER_RULE]

Writes about MEGABYTES of source-like text (Python, JavaScript, Rust, Go,
YAML, Markdown; benign uses of `token`, `secret`, `api_key`, `sk-`, hashes,
UUIDs and base64 blobs so that the prefilter and the regexes have work) in
files of 32-256 KiB, then plants PLANTS_PER_RULE fake secrets of every rule
and checksum-invalid keygate look-alikes and documentation placeholders.
Every fake secret is made here from random characters with the right prefix
and length; keygate keys carry a real CRC32/base62 checksum (the look-alikes
a wrong one). The manifest lists each planted secret's rule, file, line and
fingerprint (never the secret), and where the look-alikes are.
"""

import hashlib
import json
import os
import random
import string
import sys
import zlib

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
URLSAFE = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
UPPER_DIGITS = string.ascii_uppercase + "234567"
PLACEHOLDER_WORDS = ("your", "here", "todo", "fixme", "secret", "token", "sample",
                     "dummy", "example", "insert", "replace", "redacted", "xxxxxx")

rng = random.SystemRandom()


def rand(alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def clean(make):
    """A random value without a placeholder word in it by chance."""
    while True:
        value = make()
        if not any(w in value.lower() for w in PLACEHOLDER_WORDS):
            return value


def base62(n):
    digits = ""
    while True:
        n, r = divmod(n, 62)
        digits = BASE62[r] + digits
        if n == 0:
            return digits


def keygate_key(env="live", valid=True):
    body = f"kg_{env}_{rand(ALNUM, 32)}"
    checksum = base62(zlib.crc32(body.encode())).rjust(6, "0")
    if not valid:
        checksum = checksum[:-1] + ("a" if checksum[-1] != "a" else "b")
    return body + checksum


def fingerprint(rule, secret):
    return hashlib.sha256(f"{rule}:{secret}".encode()).hexdigest()


# rule -> (make secret, line template(s)); "{}" is the secret.
SINGLE = {
    "keygate-key": (lambda: keygate_key(rng.choice(["live", "test", "admin", "staging"])),
                    ['KEYGATE_API_KEY={}', 'client = OpenAI(base_url=BASE, api_key="{}")']),
    "anthropic-api-key": (lambda: clean(lambda: f"sk-ant-api03-{rand(URLSAFE, 93)}AA"),
                          ['ANTHROPIC_API_KEY={}', 'headers["x-api-key"] = "{}"']),
    "anthropic-admin-key": (lambda: clean(lambda: f"sk-ant-admin01-{rand(URLSAFE, 93)}AA"),
                            ['admin_client = Anthropic(api_key="{}")']),
    "openrouter-api-key": (lambda: f"sk-or-v1-{rand(HEX, 64)}", ['const router = "{}";']),
    "openai-project-key": (lambda: clean(lambda: f"sk-proj-{rand(URLSAFE, 74)}T3BlbkFJ{rand(URLSAFE, 74)}"),
                           ['OPENAI_API_KEY={}', 'Authorization: Bearer {}']),
    "openai-service-account-key": (lambda: clean(lambda: f"sk-svcacct-{rand(URLSAFE, 120)}"),
                                   ['  openai_key: {}']),
    "openai-admin-key": (lambda: clean(lambda: f"sk-admin-{rand(URLSAFE, 100)}"), ['ADMIN = "{}"']),
    "openai-legacy-key": (lambda: clean(lambda: f"sk-{rand(ALNUM, 48)}"), ['openai.api_key = "{}"']),
    "deepseek-api-key": (lambda: f"sk-{rand(HEX, 32)}", ['DEEPSEEK_API_KEY={}']),
    "google-api-key": (lambda: clean(lambda: f"AIza{rand(URLSAFE, 35)}"), ['GEMINI_API_KEY={}', 'url = "https://x.googleapis.com/v1?key={}"']),
    "groq-api-key": (lambda: clean(lambda: f"gsk_{rand(ALNUM, 52)}"), ['GROQ_API_KEY="{}"']),
    "xai-api-key": (lambda: clean(lambda: f"xai-{rand(ALNUM, 80)}"), ["curl -H 'Authorization: Bearer {}' https://api.x.ai/v1/models"]),
    "perplexity-api-key": (lambda: clean(lambda: f"pplx-{rand(ALNUM, 48)}"), ["PPLX = '{}'"]),
    "github-token": (lambda: clean(lambda: rng.choice(["ghp", "gho", "ghu", "ghs", "ghr"]) + "_" + rand(ALNUM, 36)), ['      GH_PAT: {}']),
    "github-fine-grained-token": (lambda: clean(lambda: f"github_pat_{rand(ALNUM, 22)}_{rand(ALNUM, 59)}"), ['git clone https://x:{}@github.com/o/r']),
    "generic-api-key": (lambda: clean(lambda: rand(ALNUM, 31) + rng.choice(string.digits)), ['PAYMENTS_API_KEY="{}"', 'webhook_secret: {}', 'export SLACK_TOKEN={}']),
}

LOOKALIKE_TEMPLATES = ['KEYGATE_API_KEY={}', 'key = "{}"', 'client = OpenAI(api_key="{}")']
PLACEHOLDER_LINES = [
    "OPENAI_API_KEY=your-openai-key-here",
    "ANTHROPIC_API_KEY=sk-ant-api03-abc123...",
    "GEMINI_API_KEY=AIzaSyBabc123...",
    "GROQ_API_KEY=gsk_abc123def456...",
    "DEEPSEEK_API_KEY=sk-abc123def456...",
    "API_KEY=${OPENAI_API_KEY}",
    "SECRET=xxxxxxxxxxxxxxxxxxxxxxxx",
    # AWS's documented example id, assembled so no file holds a key-shaped string.
    "aws_access_key_id = " + "AKIA" + "IOSFODNN7" + "EXAMPLE",
    'client = openai.OpenAI(api_key="sk-proj-abc123...")',
]

WORDS = ("request response handler config stream buffer parse render index value "
         "result error retry client server session cache queue worker batch model "
         "prompt usage ledger budget limit policy route upstream header payload "
         "token tokenizer secret_name api_key_env task-queue disk-usage risk-score").split()


def ident():
    return "_".join(rng.choice(WORDS).replace("-", "_") for _ in range(rng.randint(1, 3)))


def noise_line():
    kind = rng.randrange(16)
    a, b = ident(), ident()
    if kind == 0:
        return f"def {a}({b}, {ident()}):"
    if kind == 1:
        return f"    {a} = {b}.{ident()}({rng.randint(0, 9999)})"
    if kind == 2:
        return f"    # {' '.join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))}"
    if kind == 3:
        return f"const {a} = require('{b}');"
    if kind == 4:
        return f"    let {a}: Vec<{b.title().replace('_', '')}> = Vec::with_capacity({rng.randint(1, 512)});"
    if kind == 5:
        return f"    commit = \"{rand(HEX, 40)}\""
    if kind == 6:
        return f"    request_id = \"{rand(HEX, 8)}-{rand(HEX, 4)}-{rand(HEX, 4)}-{rand(HEX, 4)}-{rand(HEX, 12)}\""
    if kind == 7:
        return f"  data: {rand(B64, 76)}"
    if kind == 8:
        return f"    token = next_token({a})"
    if kind == 9:
        return f"    secret_name = os.environ[\"{a.upper()}_SECRET\"]"
    if kind == 10:
        return f"func {a.title().replace('_', '')}(ctx context.Context, {b} string) error {{"
    if kind == 11:
        return f"- name: {a}\n  image: registry.local/{b}:{rng.randint(1, 40)}.{rng.randint(0, 9)}"
    if kind == 12:
        return f"    if {a} is None or len({b}) > {rng.randint(1, 4096)}:"
    if kind == 13:
        return f"    logger.info(\"{a} done in %s ms\", elapsed)  # sk-learn disk-usage task-{rng.randint(1, 99)}"
    if kind == 14:
        return f"| {a} | {b} | {rng.randint(0, 100)} |"
    return "    }" if rng.random() < 0.5 else ""


EXTS = [".py", ".js", ".rs", ".go", ".yaml", ".md", ".ts", ".toml"]


def main():
    out_dir, manifest_path = sys.argv[1], sys.argv[2]
    megabytes = float(sys.argv[3]) if len(sys.argv) > 3 else 200
    per_rule = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    target = int(megabytes * 1_000_000)
    pool = [noise_line() for _ in range(60_000)]
    # Each planted group gets a file of its own (so its line stays right).
    groups = (len(SINGLE) + 2) * per_rule + per_rule * 10 + per_rule * 2
    top_kib = max(8, min(256, target // 1024 // (groups * 2)))

    # Lay out the files as lists of lines first; plant, then write.
    files = []
    total = 0
    n = 0
    while total < target:
        size = rng.randint(max(4, top_kib // 8), top_kib) * 1024
        lines = []
        length = 0
        while length < size:
            chunk = rng.choices(pool, k=256)
            lines.extend(chunk)
            length += sum(len(l) + 1 for l in chunk)
        name = f"src/{n % 37:02d}/{n // 37:03d}/module_{n}{EXTS[n % len(EXTS)]}"
        files.append([name, lines])
        total += length
        n += 1

    plants = []
    used = set()

    def plant(lines_to_insert):
        """Insert lines at a random spot of a random file not planted yet;
        the 1-based line of the first."""
        while True:
            i = rng.randrange(len(files))
            if i not in used:
                used.add(i)
                break
        name, lines = files[i]
        at = rng.randrange(len(lines))
        # Keep the planted lines whole even where pool lines hold a newline.
        before = sum(l.count("\n") + 1 for l in lines[:at])
        lines[at:at] = lines_to_insert
        return name, before + 1

    for rule, (make, templates) in SINGLE.items():
        for k in range(per_rule):
            secret = make()
            name, line = plant([templates[k % len(templates)].format(secret)])
            plants.append({"rule": rule, "file": name, "line": line,
                           "fingerprint": fingerprint(rule, secret)})
    for _ in range(per_rule):
        key_id = "AKIA" + rand(UPPER_DIGITS, 16)
        secret = clean(lambda: rand(B64, 37) + "Ab1")
        name, line = plant([f"aws_access_key_id = {key_id}", f"aws_secret_access_key = {secret}"])
        plants.append({"rule": "aws-access-key-id", "file": name, "line": line,
                       "fingerprint": fingerprint("aws-access-key-id", key_id)})
        plants.append({"rule": "aws-secret-access-key", "file": name, "line": line + 1,
                       "fingerprint": fingerprint("aws-secret-access-key", secret)})
    for _ in range(per_rule):
        body = [clean(lambda: rand(B64, 64)) for _ in range(rng.randint(8, 24))]
        kind = rng.choice(["", "RSA ", "EC ", "OPENSSH "])
        name, line = plant([f"-----BEGIN {kind}PRIVATE KEY-----", *body, f"-----END {kind}PRIVATE KEY-----"])
        plants.append({"rule": "private-key", "file": name, "line": line,
                       "fingerprint": fingerprint("private-key", "".join(body))})

    lookalike_files = []
    for k in range(per_rule * 10):
        fake = keygate_key(rng.choice(["live", "test"]), valid=False)
        name, line = plant([LOOKALIKE_TEMPLATES[k % len(LOOKALIKE_TEMPLATES)].format(fake)])
        lookalike_files.append({"file": name, "line": line})
    for k in range(per_rule * 2):
        plant(PLACEHOLDER_LINES)

    os.makedirs(out_dir, exist_ok=True)
    written = 0
    for name, lines in files:
        path = os.path.join(out_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        text = "\n".join(lines) + "\n"
        with open(path, "w") as f:
            f.write(text)
        written += len(text)
    with open(manifest_path, "w") as f:
        json.dump({"bytes": written, "files": len(files), "plants": plants,
                   "lookalikes": lookalike_files}, f)
    print(f"corpus: {written / 1e6:.1f} MB in {len(files)} files, {len(plants)} planted secrets "
          f"({len(SINGLE) + 3} rules), {len(lookalike_files)} checksum-invalid keygate look-alikes",
          file=sys.stderr)


if __name__ == "__main__":
    main()
