// Renders the server's OpenAPI document as a browsable page, with nothing loaded from elsewhere.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return schemaName(schema.items) + "[]";
  return schema.type || "object";
}

function permissions(op) {
  const scopes = new Set();
  for (const req of op.security || []) for (const list of Object.values(req)) list.forEach((s) => scopes.add(s));
  if (!op.security) return "public";
  return scopes.size ? [...scopes].join(", ") : "any member";
}

function operation(path, method, op, doc) {
  const body = el("div", {});
  if (op.description) body.append(el("p", {}, op.description));
  const params = op.parameters || [];
  if (params.length) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "Parameter"), el("th", {}, "In"), el("th", {}, "Description")));
    for (const p of params) table.append(el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, p.description || "")));
    body.append(table);
  }
  const request = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (request) body.append(el("p", {}, "Body: ", el("code", {}, schemaName(request.schema))));
  for (const [status, resp] of Object.entries(op.responses || {})) {
    const json = resp.content && Object.values(resp.content)[0];
    body.append(el("div", {}, el("code", {}, status), " ", resp.description || "", json ? " → " : "", json ? el("code", {}, schemaName(json.schema)) : ""));
  }
  const summary = el("summary", {}, el("span", { class: "method " + method }, method), el("code", {}, path), " ", op.summary || "", el("span", { class: "perm" }, permissions(op)));
  return el("details", {}, summary, body);
}

function schemas(doc) {
  const section = el("section", {}, el("h2", { id: "schemas" }, "schemas"));
  for (const [name, schema] of Object.entries((doc.components || {}).schemas || {})) {
    section.append(el("details", {}, el("summary", {}, el("code", {}, name)), el("pre", {}, JSON.stringify(schema, null, 2))));
  }
  return section;
}

async function main() {
  const main = document.getElementById("ops");
  const doc = await (await fetch("/api/openapi.json")).json();
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op, doc));
    }
  }
  main.replaceChildren();
  const toc = document.getElementById("toc");
  for (const [tag, ops] of byTag) {
    toc.append(el("a", { href: "#" + tag }, tag));
    main.append(el("h2", { id: tag }, tag), ...ops);
  }
  toc.append(el("a", { href: "#schemas" }, "schemas"));
  main.append(schemas(doc));
}

main().catch((e) => { document.getElementById("ops").textContent = "Cannot load the API description: " + e; });
