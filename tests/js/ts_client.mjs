// The TypeScript SDK v2 client (@modelcontextprotocol/client, installed by `make node-tools` into .tools/)
// against one MCP endpoint: connect with version negotiation, list the tools, call some, print one JSON
// object on stdout. Used by tests/test_js_clients_modern.py.
//
//   node tests/js/ts_client.mjs URL [--negotiation auto|legacy|PIN] [--transport http|sse]
//        [--expect-version VERSION] [--call TOOL JSON_ARGS]...
//
// --negotiation: `auto` probes with server/discover and falls back to initialize; `legacy` is the plain
// 2025 handshake; anything else pins that modern revision. With --expect-version the script exits 3 when
// the negotiated protocol version differs (after printing its JSON). Errors print {"error": ...}, exit 1.

import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tools = process.env.MCPGW_NODE_TOOLS ?? resolve(here, '..', '..', '.tools');

/** Import an ESM package installed under the .tools npm prefix (an ESM import cannot search it). */
async function importTool(name) {
    const root = join(tools, 'node_modules', name);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const entry = pkg.exports?.['.']?.import?.default ?? pkg.module ?? pkg.main;
    return import(pathToFileURL(join(root, entry)).href);
}

function parseArgs(argv) {
    const opts = { url: undefined, negotiation: 'auto', transport: 'http', expect: undefined, calls: [] };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === '--negotiation') opts.negotiation = argv[++i];
        else if (arg === '--transport') opts.transport = argv[++i];
        else if (arg === '--expect-version') opts.expect = argv[++i];
        else if (arg === '--call') {
            opts.calls.push({ name: argv[i + 1], arguments: JSON.parse(argv[i + 2] ?? '{}') });
            i += 2;
        } else if (!opts.url) opts.url = arg;
        else throw new Error(`unexpected argument ${arg}`);
    }
    if (!opts.url) throw new Error('usage: ts_client.mjs URL [--negotiation auto|legacy|VERSION] [--call TOOL JSON]...');
    return opts;
}

function negotiationMode(value) {
    return value === 'auto' || value === 'legacy' ? value : { pin: value };
}

function describeCall(name, result) {
    const texts = (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);
    return {
        tool: name,
        isError: result.isError === true,
        text: texts.join('\n'),
        structuredContent: result.structuredContent ?? null,
        resultType: result.resultType ?? null,
        meta: result._meta ?? null
    };
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const sdk = await importTool('@modelcontextprotocol/client');
    const pkg = JSON.parse(readFileSync(join(tools, 'node_modules', '@modelcontextprotocol/client', 'package.json'), 'utf8'));
    const client = new sdk.Client(
        { name: 'mcpgw-ts-client-test', version: '1.0.0' },
        { versionNegotiation: { mode: negotiationMode(opts.negotiation) } }
    );
    const url = new URL(opts.url);
    const transport = opts.transport === 'sse' ? new sdk.SSEClientTransport(url) : new sdk.StreamableHTTPClientTransport(url);
    await client.connect(transport);
    const out = {
        sdkVersion: pkg.version,
        negotiation: opts.negotiation,
        transport: opts.transport,
        protocolVersion: client.getNegotiatedProtocolVersion() ?? null,
        era: client.getProtocolEra() ?? null,
        sessionId: transport.sessionId ?? null,
        serverInfo: client.getServerVersion() ?? null,
        supportedVersions: client.getDiscoverResult()?.supportedVersions ?? null,
        tools: [],
        calls: []
    };
    try {
        let cursor;
        do {
            const page = await client.listTools(cursor ? { cursor } : undefined);
            out.tools.push(...page.tools.map((t) => t.name));
            cursor = page.nextCursor;
        } while (cursor);
        for (const call of opts.calls) {
            out.calls.push(describeCall(call.name, await client.callTool(call)));
        }
    } finally {
        await client.close();
    }
    process.stdout.write(JSON.stringify(out) + '\n');
    if (opts.expect && out.protocolVersion !== opts.expect) {
        process.stderr.write(`negotiated ${out.protocolVersion}, expected ${opts.expect}\n`);
        process.exitCode = 3;
    }
}

main().catch((err) => {
    const error = { name: err?.name, message: String(err?.message ?? err), code: err?.code ?? null, data: err?.data ?? null };
    process.stdout.write(JSON.stringify({ error }) + '\n');
    process.exitCode = 1;
});
