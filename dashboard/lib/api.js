// The dashboard's only way to the server: the public HTTP API with a bearer key. Errors come back
// as RFC 9457 problem+json; they are raised as ApiProblem with the server's code and detail.

export class ApiProblem extends Error {
  constructor(status, code, detail, requestId, path) {
    super(`${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.requestId = requestId;
    this.path = path;
  }
}

export function createClient(key) {
  return async function api(path, { method = 'GET', body } = {}) {
    const headers = { authorization: `Bearer ${key}`, accept: 'application/json, application/problem+json, text/plain' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    } catch (e) {
      throw new ApiProblem(0, 'NETWORK', `the server did not answer (${e.message})`, null, path);
    }
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    if (!res.ok) {
      let p = {};
      if (type.includes('json')) {
        try {
          p = JSON.parse(text);
        } catch {
          /* fall through to the status line */
        }
      }
      throw new ApiProblem(res.status, p.code ?? `HTTP_${res.status}`, p.detail ?? res.statusText, p.requestId ?? res.headers.get('x-request-id'), path);
    }
    return type.includes('json') ? JSON.parse(text) : text;
  };
}
