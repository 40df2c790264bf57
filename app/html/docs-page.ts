// GET /docs: the API reference as one self-contained HTML page (inline CSS, no scripts, no
// fonts or files from elsewhere), rendered from the OpenAPI document so it never disagrees.
import type { JsonSchema, OpenApiDocument, Operation } from '../http/openapi/document.ts';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** `code` spans for backticks, the rest escaped. */
const prose = (s: string) => escape(s).replace(/`([^`]+)`/g, '<code>$1</code>');

const anchor = (method: string, path: string) => `${method}-${path}`.replace(/[^a-zA-Z0-9]+/g, '-');

/** A short type label: `string`, `integer ≥ 1`, `array of object`, `"a" | "b"`… */
function typeLabel(schema: JsonSchema): string {
  if (Array.isArray(schema['enum'])) return (schema['enum'] as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
  if ('const' in schema) return JSON.stringify(schema['const']);
  const variants = (schema['anyOf'] ?? schema['oneOf']) as JsonSchema[] | undefined;
  if (variants !== undefined) return variants.map(typeLabel).join(' or ');
  const type = schema['type'];
  const types = Array.isArray(type) ? type as string[] : typeof type === 'string' ? [type] : [];
  const items = schema['items'] as JsonSchema | undefined;
  const base = types.map((t) => (t === 'array' && items !== undefined ? `array of ${typeLabel(items)}` : t)).join(
    ' or ',
  );
  return base === '' ? 'any' : base;
}

function constraints(schema: JsonSchema): string[] {
  const out: string[] = [];
  const add = (key: string, label: string) => {
    if (schema[key] !== undefined) out.push(`${label} ${String(schema[key])}`);
  };
  add('minimum', '≥');
  add('maximum', '≤');
  add('exclusiveMinimum', '>');
  add('exclusiveMaximum', '<');
  add('minLength', 'length ≥');
  add('maxLength', 'length ≤');
  add('minItems', 'items ≥');
  add('maxItems', 'items ≤');
  if (schema['pattern'] !== undefined) out.push(`pattern ${String(schema['pattern'])}`);
  if (schema['format'] !== undefined) out.push(String(schema['format']));
  if (schema['default'] !== undefined) out.push(`default ${JSON.stringify(schema['default'])}`);
  if (schema['additionalProperties'] === false) out.push('no other fields');
  return out;
}

/** A schema as a nested list of fields. */
function renderSchema(schema: JsonSchema, depth = 0): string {
  if (depth > 6) return '';
  const properties = schema['properties'] as Record<string, JsonSchema> | undefined;
  const required = new Set((schema['required'] as string[] | undefined) ?? []);
  const items = schema['items'] as JsonSchema | undefined;
  const extra = schema['additionalProperties'];
  const parts: string[] = [];
  if (properties !== undefined) {
    parts.push('<ul class="fields">');
    for (const [name, property] of Object.entries(properties)) {
      const notes = constraints(property);
      const description = typeof property['description'] === 'string' ? ` — ${prose(property['description'])}` : '';
      parts.push(
        `<li><code class="name">${escape(name)}</code> <span class="type">${escape(typeLabel(property))}</span>` +
          `${required.has(name) ? ' <span class="req">required</span>' : ''}${
            notes.length > 0 ? ` <span class="notes">${escape(notes.join(', '))}</span>` : ''
          }${description}` +
          `${renderSchema(property, depth + 1)}</li>`,
      );
    }
    parts.push('</ul>');
  } else if (extra !== undefined && typeof extra === 'object' && extra !== null) {
    const names = schema['propertyNames'] as JsonSchema | undefined;
    parts.push(
      `<ul class="fields"><li><code class="name">{key}</code>${
        names?.['description'] === undefined ? '' : ` (${prose(String(names['description']))})`
      } → <span class="type">${escape(typeLabel(extra as JsonSchema))}</span>${
        renderSchema(extra as JsonSchema, depth + 1)
      }</li></ul>`,
    );
  }
  if (items !== undefined) parts.push(renderSchema(items, depth + 1));
  for (const variant of ((schema['anyOf'] ?? schema['oneOf']) as JsonSchema[] | undefined) ?? []) {
    parts.push(renderSchema(variant, depth + 1));
  }
  return parts.join('');
}

function renderOperation(
  method: string,
  path: string,
  op: Operation,
  schemes: OpenApiDocument['components']['securitySchemes'],
): string {
  const auth = op.security === undefined || op.security.length === 0
    ? 'none'
    : op.security.map((s) =>
      Object.keys(s).map((name) =>
        `<code>${escape(name)}</code> (${prose(String(schemes[name]?.['description'] ?? ''))})`
      ).join(' and ')
    ).join(' or ');
  const parameters = (op.parameters ?? []).map((p) => {
    const notes = constraints(p.schema);
    return `<tr><td><code>${escape(p.name)}</code></td><td>${p.in}</td><td>${escape(typeLabel(p.schema))}${
      notes.length > 0 ? `<br><span class="notes">${escape(notes.join(', '))}</span>` : ''
    }</td>` +
      `<td>${p.required ? 'yes' : ''}</td><td>${p.description === undefined ? '' : prose(p.description)}</td></tr>`;
  }).join('');
  const body = op.requestBody === undefined
    ? ''
    : Object.entries(op.requestBody.content).map(([type, { schema }]) =>
      `<h4>Body${op.requestBody!.required ? '' : ' (optional)'} <span class="ctype">${escape(type)}</span></h4>${
        renderSchema(schema) || `<p>${escape(typeLabel(schema))}</p>`
      }`
    ).join('');
  const responses = Object.entries(op.responses).map(([status, response]) => {
    const content = Object.entries(response.content ?? {}).map((
      [type, { schema }],
    ) => (schema['$ref'] === '#/components/schemas/Error'
      ? ''
      : `<div class="ctype">${escape(type)}</div>${renderSchema(schema)}`)
    ).join('');
    const headers = Object.entries(response.headers ?? {}).map(([name, h]) =>
      `<div class="notes">header <code>${escape(name)}</code>: ${prose(h.description)}</div>`
    ).join('');
    return `<details${status.startsWith('2') ? ' open' : ''}><summary><span class="status s${status[0]}">${
      escape(status)
    }</span> ${prose(response.description)}</summary>${headers}${content}</details>`;
  }).join('');
  return `<section class="op" id="${anchor(method, path)}">
<h3><span class="method ${method}">${method.toUpperCase()}</span> <code>${escape(path)}</code></h3>
<p class="summary">${prose(op.summary)}</p>${op.description === undefined ? '' : `<p>${prose(op.description)}</p>`}
<p class="auth"><b>Credentials:</b> ${auth}</p>
${
    parameters === ''
      ? ''
      : `<h4>Parameters</h4><table><thead><tr><th>name</th><th>in</th><th>type</th><th>required</th><th></th></tr></thead><tbody>${parameters}</tbody></table>`
  }
${body}<h4>Responses</h4>${responses}</section>`;
}

const STYLE = `
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#fafbfc}
nav{position:fixed;top:0;bottom:0;left:0;width:290px;overflow:auto;padding:16px;background:#f0f2f5;border-right:1px solid #dde1e6;box-sizing:border-box;font-size:13px}
nav a{display:block;color:#1d2330;text-decoration:none;padding:1px 0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}nav a:hover{text-decoration:underline}
nav h2{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#5b6473;margin:14px 0 4px}
main{margin-left:290px;padding:24px 40px;max-width:1000px}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef0f3;padding:0 3px;border-radius:3px}
.op{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:4px 20px 14px;margin:18px 0}
.method{display:inline-block;min-width:58px;text-align:center;color:#fff;border-radius:4px;font-size:12px;padding:2px 6px;font-weight:600}
.get{background:#2f6fce}.post{background:#2e8b57}.patch{background:#c77c02}.put{background:#8a4fbf}.delete{background:#c23b3b}
.summary{font-weight:600}.auth{color:#3b4352}
table{border-collapse:collapse;font-size:13px;width:100%}td,th{border-bottom:1px solid #eceef1;padding:4px 8px;text-align:left;vertical-align:top}
.fields{list-style:none;padding-left:16px;border-left:2px solid #eceef1;margin:4px 0}.fields li{margin:2px 0}
.type{color:#7a3e9d}.req{color:#c23b3b;font-size:12px}.notes{color:#6a7280;font-size:12px}.ctype{color:#6a7280;font-size:12px}
.status{display:inline-block;min-width:34px;font-weight:600}.s2{color:#2e8b57}.s3{color:#2f6fce}.s4{color:#c77c02}.s5{color:#c23b3b}
summary{cursor:pointer}h4{margin:14px 0 4px}`;

/** The whole reference page. */
export function renderDocsPage(document: OpenApiDocument): string {
  const byTag = new Map<string, { method: string; path: string; op: Operation }[]>();
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = op.tags[0] ?? 'Other';
      byTag.set(tag, [...(byTag.get(tag) ?? []), { method, path, op }]);
    }
  }
  const nav = [...byTag].map(([tag, ops]) =>
    `<h2>${escape(tag)}</h2>${
      ops.map(({ method, path, op }) =>
        `<a href="#${anchor(method, path)}" title="${escape(op.summary)}"><b>${method.toUpperCase()}</b> ${
          escape(path)
        }</a>`
      ).join('')
    }`
  ).join('');
  const sections = [...byTag].map(([tag, ops]) =>
    `<h2>${escape(tag)}</h2>${
      ops.map(({ method, path, op }) => renderOperation(method, path, op, document.components.securitySchemes)).join(
        '\n',
      )
    }`
  ).join('\n');
  const errorSchema = document.components.schemas['Error'];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(document.info.title)} API ${escape(document.info.version)}</title><style>${STYLE}</style></head>
<body><nav><b>${escape(document.info.title)} ${
    escape(document.info.version)
  }</b>${nav}<h2>More</h2><a href="/openapi.json">openapi.json</a></nav>
<main><h1>${escape(document.info.title)} API <small>${escape(document.info.version)}</small></h1>
<p>${prose(document.info.description)}</p>
<p>The machine-readable description is <a href="/openapi.json"><code>/openapi.json</code></a> (OpenAPI ${
    escape(document.openapi)
  }).</p>
<h2>Errors</h2><p>Every error answer has this shape:</p>${errorSchema === undefined ? '' : renderSchema(errorSchema)}
${sections}
</main></body></html>
`;
}
