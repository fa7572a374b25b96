"""Import time and peak memory of a GitHub-sized OpenAPI description, before and after.

Writes a generated description (default 1,200 operations, about 13 MB of JSON, shaped like GitHub's: long
operation ids, path/query parameters, shared request and response schemas) to a temporary directory, then
imports it in a fresh process per phase, so each phase's peak resident memory (``ru_maxrss`` of the whole
process: interpreter, imports and the spec text included) is its own:

- ``before``: the JSON text parsed with ``yaml.safe_load`` (what the import did before), then converted;
- ``after``: the same text through ``parse_spec_text`` (JSON parsed as JSON), then converted;
- ``after-yaml``: the description as YAML text through ``parse_spec_text`` (libyaml's loader when present).

    .venv/bin/python bench/openapi_bench.py [--operations 1200]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def description(operations: int) -> dict:
    """A spec of ``operations`` operations whose size and shape resemble GitHub's REST description."""
    props = {f"field_{j}": {"type": "string", "description": "A field of the resource, described at length. " * 3,
                            "example": "value"} for j in range(25)}
    schemas = {f"resource-{i}": {"type": "object", "title": f"Resource {i}", "properties": props,
                                 "required": ["field_0"]} for i in range(400)}
    paths = {}
    for i in range(operations):
        paths[f"/orgs/{{org}}/actions/permissions/repositories-{i}/{{repository_id}}"] = {
            "parameters": [{"name": "org", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "The organization name. The name is not case sensitive."}],
            "put": {
                "operationId": f"actions/set-selected-repositories-enabled-github-actions-organization-{i}",
                "summary": "Enable a selected repository for GitHub Actions in an organization",
                "description": "Adds a repository to the list of selected repositories. " * 8,
                "parameters": [
                    {"name": "repository_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    {"name": "per_page", "in": "query", "schema": {"type": "integer", "default": 30}},
                    {"name": "page", "in": "query", "schema": {"type": "integer", "default": 1}}],
                "requestBody": {"content": {"application/json": {"schema": {
                    "$ref": f"#/components/schemas/resource-{i % 400}"}}}},
                "responses": {"200": {"description": "Response", "content": {"application/json": {
                    "schema": {"type": "array", "items": {"$ref": f"#/components/schemas/resource-{(i + 1) % 400}"}},
                    "examples": {"default": {"value": [{f"field_{j}": "v" * 40 for j in range(25)}] * 4}}}}}},
            }}
    return {"openapi": "3.0.3", "info": {"title": "GitHub-sized", "version": "1"},
            "servers": [{"url": "https://api.example.com"}], "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}]}


def phase(name: str, path: str) -> None:
    """Run one phase in this process and print ``seconds peak_rss_mb tools`` as JSON."""
    from mcpgw_sdk.openapi import from_openapi, parse_spec_text

    text = Path(path).read_text(encoding="utf-8")
    start = time.perf_counter()
    if name == "before":
        import yaml

        spec = yaml.safe_load(text)
    else:
        spec = parse_spec_text(text, max_bytes=64 * 1024 * 1024)
    parsed = time.perf_counter() - start
    doc = from_openapi(spec, name="github")
    total = time.perf_counter() - start
    # The whole process's peak: the interpreter, mcpgw's imports and the text itself included.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"parse": parsed, "total": total, "peak_mb": peak, "tools": len(doc["tools"])}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=1200, help="operations in the generated description")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase(args.phase, args.file)
        return
    import yaml

    spec = description(args.operations)
    with tempfile.TemporaryDirectory() as tmp:
        json_path, yaml_path = Path(tmp) / "spec.json", Path(tmp) / "spec.yaml"
        json_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        yaml_path.write_text(yaml.dump(spec, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)), encoding="utf-8")
        size = json_path.stat().st_size / 1e6
        print(f"OpenAPI import of a generated description: {args.operations} operations, {size:.1f} MB of JSON "
              f"(libyaml: {'yes' if getattr(yaml, '__with_libyaml__', False) else 'no'})")
        print(f"{'phase':<42} {'parse s':>8} {'total s':>8} {'peak MB':>8} {'tools':>6}")
        for name, path, label in (("before", json_path, "before: JSON text through yaml.safe_load"),
                                  ("after", json_path, "after: JSON text as JSON"),
                                  ("after-yaml", yaml_path, "after: YAML text, C loader")):
            out = subprocess.run([sys.executable, __file__, "--phase", name, "--file", str(path)], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(f"{label:<42} {row['parse']:>8.2f} {row['total']:>8.2f} {row['peak_mb']:>8.0f} {row['tools']:>6}")


if __name__ == "__main__":
    main()
