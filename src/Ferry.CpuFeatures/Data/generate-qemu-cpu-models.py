#!/usr/bin/env python3
"""Regenerate qemu-cpu-models.json from a QEMU source tree.

The feature lists of QEMU's named x86 CPU models are facts about QEMU; this script reads them out of
target/i386/cpu.c (builtin_x86_defs, feature_word_info) and target/i386/cpu.h (CPUID_* bit macros) and
writes them as data, with feature names spelled as Linux /proc/cpuinfo flags. No QEMU code is copied.

The committed file was generated from Debian's qemu 1:10.0.13+ds-0+deb13u1 (QEMU 10.0.13):

    mkdir -p /tmp/aptsrc/lists/partial && cd /tmp/aptsrc
    printf 'Types: deb-src\\nURIs: http://deb.debian.org/debian\\nSuites: trixie\\nComponents: main\\n' \\
           'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' > debian.sources
    apt-get -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/tmp/aptsrc \\
            -o Dir::State::Lists=/tmp/aptsrc/lists update
    apt-get -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/tmp/aptsrc \\
            -o Dir::State::Lists=/tmp/aptsrc/lists source --download-only qemu
    tar xJf qemu_10.0.13+ds.orig.tar.xz qemu-10.0.13/target/i386/cpu.c qemu-10.0.13/target/i386/cpu.h
    python3 generate-qemu-cpu-models.py qemu-10.0.13 'Debian qemu 1:10.0.13+ds-0+deb13u1' > qemu-cpu-models.json
"""
import json
import re
import sys

# Feature words that are CPUID leaves (MSR-based words, KVM paravirt words and the XCR0/XSS masks are not
# features a guest program can test, and hosts cannot be compared on them).
CPUID_WORDS = [
    "FEAT_1_EDX", "FEAT_1_ECX", "FEAT_8000_0001_EDX", "FEAT_8000_0001_ECX", "FEAT_C000_0001_EDX",
    "FEAT_7_0_EBX", "FEAT_7_0_ECX", "FEAT_7_0_EDX", "FEAT_7_1_EAX", "FEAT_7_1_EDX", "FEAT_7_2_EDX",
    "FEAT_24_0_EBX", "FEAT_8000_0007_EDX", "FEAT_8000_0007_EBX", "FEAT_8000_0008_EBX", "FEAT_8000_0021_EAX",
    "FEAT_8000_0021_EBX", "FEAT_8000_0022_EAX", "FEAT_XSAVE", "FEAT_6_EAX", "FEAT_14_0_ECX", "FEAT_SVM",
]

# QEMU spellings that /proc/cpuinfo writes differently beyond the '-'/'.' -> '_' rule.
CPUINFO_EXCEPTIONS = {
    "ds": "dts",
    "tsc-deadline": "tsc_deadline_timer",
    "cr8legacy": "cr8_legacy",
    "avx512vbmi2": "avx512_vbmi2",
    "avx512vnni": "avx512_vnni",
    "avx512bitalg": "avx512_bitalg",
    "tsx-ldtrk": "tsxldtrk",
    "xstore": "rng",
    "xstore-en": "rng_en",
    "xcrypt": "ace",
    "xcrypt-en": "ace_en",
    "pause-filter": "pausefilter",
    "cet-ss": "shstk",
    "cet-ibt": "ibt",
}


def cpuinfo_name(qemu):
    return CPUINFO_EXCEPTIONS.get(qemu, qemu.replace("-", "_").replace(".", "_"))


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def parse_macros(header):
    """CPUID_* and friends: name -> integer bit mask (single bits or ORs of other macros)."""
    text = strip_comments(header).replace("\\\n", " ")
    raw = {}
    for m in re.finditer(r"^#define\s+(\w+)\s+(.*)", text, re.M):
        raw[m.group(1)] = m.group(2).strip()
    values = {}

    def value(name, depth=0):
        if name in values:
            return values[name]
        if depth > 20 or name not in raw:
            return None
        expr = raw[name]
        shift = re.fullmatch(r"\(?\s*1U?L*\s*<<\s*(\d+)\s*\)?", expr)
        if shift:
            values[name] = 1 << int(shift.group(1))
            return values[name]
        parts = [p.strip(" ()") for p in expr.replace("(", " ").replace(")", " ").split("|")]
        total = 0
        for part in parts:
            if not part:
                continue
            if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", part):
                total |= int(part, 0)
                continue
            v = value(part, depth + 1)
            if v is None:
                return None
            total |= v
        values[name] = total
        return total

    for name in raw:
        value(name)
    return values


def parse_feature_words(source):
    start = source.index("FeatureWordInfo feature_word_info[FEATURE_WORDS] = {")
    body = source[start:source.index("\n};", start)]
    words = {}
    for m in re.finditer(r"\[(FEAT_\w+)\] = \{(.*?)\n    \},", body, re.S):
        word, block = m.group(1), strip_comments(m.group(2))
        names = re.search(r"\.feat_names = \{(.*?)\}", block, re.S)
        cpuid = re.search(r"\.cpuid = \{(.*?)\}", block, re.S)
        if not names or not cpuid:
            continue
        bits = [None if t == "NULL" else t.strip('"') for t in re.findall(r'"[^"]*"|NULL', names.group(1))]
        c = cpuid.group(1)
        leaf = re.search(r"\.eax\s*=\s*(0x[0-9a-fA-F]+|\d+)", c)
        ecx = re.search(r"\.ecx\s*=\s*(0x[0-9a-fA-F]+|\d+)", c)
        reg = re.search(r"\.reg\s*=\s*R_(E[A-D]X)", c)
        if not leaf or not reg:
            continue
        words[word] = {
            "word": word,
            "leaf": int(leaf.group(1), 0),
            "subleaf": int(ecx.group(1), 0) if ecx else 0,
            "register": reg.group(1).lower(),
            "qemu_bits": (bits + [None] * 32)[:32],
        }
    return words


def split_defs(source):
    start = source.index("static const X86CPUDefinition builtin_x86_defs[] = {")
    i = source.index("{", start + len("static const X86CPUDefinition builtin_x86_defs[] = ")) + 1
    depth, entry_start, entries = 0, None, []
    while i < len(source):
        ch = source[i]
        if ch == "{":
            if depth == 0:
                entry_start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                entries.append(source[entry_start:i + 1])
            elif depth < 0:
                break
        i += 1
    return entries


def parse_model(entry, macros, words):
    text = strip_comments(entry)
    name = re.search(r'\.name = "([^"]+)"', text)
    if not name:
        return None
    model = {"name": name.group(1)}
    vendor = re.search(r"\.vendor = (CPUID_VENDOR_\w+)", text)
    vendors = {"CPUID_VENDOR_INTEL": "GenuineIntel", "CPUID_VENDOR_AMD": "AuthenticAMD",
               "CPUID_VENDOR_HYGON": "HygonGenuine", "CPUID_VENDOR_ZHAOXIN1": "  Shanghai  "}
    model["vendor"] = vendors.get(vendor.group(1), vendor.group(1)) if vendor else None
    for field in ("family", "model", "stepping"):
        m = re.search(r"\." + field + r" = (\d+)", text)
        model[field] = int(m.group(1)) if m else None
    model_id = re.search(r'\.model_id = "([^"]*)"', text)
    model["model_id"] = model_id.group(1) if model_id else ""
    features = set()
    for m in re.finditer(r"\.features\[(FEAT_\w+)\] =\s*(.*?),\n", text, re.S):
        word, expr = m.group(1), m.group(2)
        if word not in words:
            continue
        mask = 0
        for token in re.findall(r"[A-Z_][A-Z0-9_]*", expr):
            if token in macros:
                mask |= macros[token]
            else:
                raise SystemExit(f"{model['name']}: unknown macro {token}")
        for bit in range(32):
            if mask >> bit & 1:
                qemu = words[word]["qemu_bits"][bit]
                if qemu:
                    features.add(qemu)
    versions = []
    vblock = re.search(r"\.versions = \(X86CPUVersionDefinition\[\]\) \{(.*)\}\s*,?\s*\}\s*$", text, re.S)
    if vblock:
        for vm in re.finditer(r"\{\s*\.version = (\d+)(.*?)(?=\{\s*\.version =|\{\s*/\* end of list \*/\s*\}\s*\}?\s*$|$)",
                              vblock.group(1), re.S):
            number = int(vm.group(1))
            body = vm.group(2)
            alias = re.search(r'\.alias = "([^"]+)"', body)
            props = re.findall(r'\{\s*"([^"]+)",\s*"([^"]*)"\s*\}', body)
            versions.append({"version": number, "alias": alias.group(1) if alias else None, "props": props})
    if not versions:
        versions = [{"version": 1, "alias": None, "props": []}]
    return model, features, versions


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: generate-qemu-cpu-models.py QEMU_SOURCE_DIR [SOURCE_DESCRIPTION]")
    root = sys.argv[1]
    described = sys.argv[2] if len(sys.argv) > 2 else root
    source = open(f"{root}/target/i386/cpu.c", encoding="utf-8").read()
    header = open(f"{root}/target/i386/cpu.h", encoding="utf-8").read()
    version = open(f"{root}/VERSION").read().strip() if __import__("os").path.exists(f"{root}/VERSION") else "unknown"
    macros = parse_macros(header + "\n" + source)
    all_words = parse_feature_words(source)
    words = {w: all_words[w] for w in CPUID_WORDS if w in all_words}
    qemu_feature_names = {n for w in words.values() for n in w["qemu_bits"] if n}

    models = []
    for entry in split_defs(source):
        parsed = parse_model(entry, macros, words)
        if not parsed:
            continue
        base, features, versions = parsed
        current = set(features)
        model_id = base["model_id"]
        stepping = base["stepping"]
        for v in versions:
            for prop, val in v["props"]:
                if prop in qemu_feature_names:
                    if val == "on":
                        current.add(prop)
                    elif val == "off":
                        current.discard(prop)
                elif prop == "model-id":
                    model_id = val
                elif prop == "stepping":
                    stepping = int(val)
            models.append({
                "name": f"{base['name']}-v{v['version']}",
                "base": base["name"],
                "version": v["version"],
                "alias": v["alias"],
                "vendor": base["vendor"],
                "family": base["family"],
                "model": base["model"],
                "stepping": stepping,
                "model_id": model_id,
                "features": sorted(cpuinfo_name(f) for f in current),
            })

    names = {cpuinfo_name(n): n for n in qemu_feature_names}
    out = {
        "source": {
            "project": "QEMU",
            "version": version,
            "package": described,
            "files": "target/i386/cpu.c (builtin_x86_defs, feature_word_info), target/i386/cpu.h (CPUID_* bits)",
            "generator": "src/Ferry.CpuFeatures/Data/generate-qemu-cpu-models.py",
        },
        "naming": "Feature names are /proc/cpuinfo flags: QEMU's name with '-' and '.' written '_', except "
                  + ", ".join(f"{k}->{v}" for k, v in sorted(CPUINFO_EXCEPTIONS.items()))
                  + ". qemu_names maps a flag back to QEMU's spelling where they differ.",
        "excluded": "MSR-based words (arch-capabilities bits, VMX controls), KVM paravirtual words and XSAVE "
                    "component masks are not listed: they are not CPUID feature bits a program can test.",
        "feature_words": [
            {"word": w["word"], "leaf": w["leaf"], "subleaf": w["subleaf"], "register": w["register"],
             "bits": [cpuinfo_name(b) if b else None for b in w["qemu_bits"]]}
            for w in words.values()
        ],
        "qemu_names": {k: v for k, v in sorted(names.items()) if k != v},
        "models": models,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
