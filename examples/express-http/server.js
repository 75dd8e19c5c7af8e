'use strict';

const express = require('express');

// Constants.
const PORT = 9000;
const HOST = '0.0.0.0';

const app = express();
// Parse the JSON-formatted request body.
app.use(express.json({type:['application/json', 'application/octet-stream']}))

// The example of the Initializer hook. You must configure the Initializer hook when you create the function.
app.post('/initialize', (req, res) => {
  console.log(req.body)
  res.send('Hello FunctionCompute, /initialize\n');
});

// Invoke the event function.
app.post('/invoke', (req, res) => {
  console.log(req.body)
  res.send('Hello FunctionCompute, event function\n');
});

// ---- Added for fcx's HTTP-trigger example (the lines above are the seed's sample). ----
// Reached through an HTTP trigger (x-fc-control-path: /http-invoke), the function serves a
// page whose own script fetches /api/hello from the same function.
const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>fcx HTTP function</title></head>
<body>
<h1>An Express function behind an fcx HTTP trigger</h1>
<p id="message">loading...</p>
<script>
fetch('/api/hello')
  .then((r) => r.json())
  .then((j) => { document.getElementById('message').textContent = j.message; })
  .catch((e) => { document.getElementById('message').textContent = 'fetch failed: ' + e; });
</script>
</body>
</html>
`;

app.get('/', (req, res) => {
  res.type('html').send(PAGE);
});

app.get('/api/hello', (req, res) => {
  res.json({ message: 'Hello from the Express function, fetched by the page', requestId: req.headers['x-fc-request-id'] });
});

// FNV-1a (32 bits) of a body, the fingerprint fcx's tests compute too.
function fnv1a(buf) {
  let h = 0x811c9dc5;
  for (const b of buf) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

// Echo of what arrived: method, path and query, headers, body length and fingerprint.
app.all('/echo*', (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    res.json({
      method: req.method,
      target: req.originalUrl,
      headers: Object.entries(req.headers),
      bodyLength: body.length,
      bodyFnv: fnv1a(body),
    });
  });
});

var server = app.listen(PORT, HOST);
console.log(`Running on http://${HOST}:${PORT}`);

server.timeout = 0; // Never time out.
server.keepAliveTimeout = 0; // keepalive, never timeout
