// The infvsrd web page: create a job, upload with tus (resumable), follow the SSE stream,
// compare frame 0 before/after, play or download the output, list and cancel jobs.
// Only the public API (proto/openapi.yaml). Requests carry the token from the token field
// when there is one, so everything goes through fetch (EventSource and <img src> cannot
// send an Authorization header).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const el = {
    form: $('new-job'), token: $('token'), tokenHint: $('token-hint'), file: $('file'), fileName: $('file-name'),
    drop: $('drop'), container: $('container'), start: $('start'),
    prog: $('progress-section'), jobId: $('job-id'), upBar: $('up-bar'), upText: $('up-text'),
    frBar: $('fr-bar'), frText: $('fr-text'), status: $('status'),
    cmp: $('compare-section'), lr: $('img-lr'), sr: $('img-sr'), slider: $('slider'), sizes: $('sizes'),
    res: $('result-section'), video: $('video'), download: $('download'),
    jobs: document.querySelector('#jobs tbody'), jobsMsg: $('jobs-msg'), refresh: $('refresh'),
  };
  let file = null;
  let current = null; // { id, stop: AbortController, upload, previewDone }
  const objectUrls = [];

  el.token.value = sessionStorage.getItem('infvsr-token') || '';
  el.token.addEventListener('change', () => { sessionStorage.setItem('infvsr-token', el.token.value.trim()); listJobs(); });

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = el.token.value.trim();
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  }

  async function api(method, path, body) {
    const opt = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : null) };
    if (body) opt.body = JSON.stringify(body);
    const res = await fetch(path, opt);
    if (res.status === 401) el.tokenHint.hidden = false;
    let data = null;
    if (res.status !== 204) { try { data = await res.json(); } catch (e) { data = null; } }
    if (!res.ok) {
      const msg = data && data.error ? data.error.code + ': ' + data.error.message : 'HTTP ' + res.status;
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function say(text, isError) {
    el.status.textContent = text;
    el.status.className = isError ? 'err' : '';
  }

  // ---- choosing a file ----
  function setFile(f) {
    file = f || null;
    el.fileName.textContent = file ? file.name + ' (' + (file.size / 1048576).toFixed(1) + ' MiB)' : '';
    el.start.disabled = !file;
  }
  el.file.addEventListener('change', () => setFile(el.file.files[0]));
  ['dragenter', 'dragover'].forEach((t) => el.drop.addEventListener(t, (e) => { e.preventDefault(); el.drop.classList.add('over'); }));
  ['dragleave', 'drop'].forEach((t) => el.drop.addEventListener(t, () => el.drop.classList.remove('over')));
  el.drop.addEventListener('drop', (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]);
  });

  // ---- a job ----
  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (file) run(file).catch((err) => say('Failed: ' + err.message, true));
  });

  async function run(f) {
    if (typeof window.tus === 'undefined' || !window.tus || !window.tus.Upload)
      throw new Error('tus-js-client is missing (the daemon was built without npm): uploads are not possible');
    if (current) current.stop.abort();
    objectUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
    el.cmp.hidden = el.res.hidden = true;
    el.lr.removeAttribute('src');
    el.sr.removeAttribute('src');
    el.start.disabled = true;
    const container = el.container.value;
    say('Creating the job…');
    const job = await api('POST', '/v1/jobs', { input: { expected_bytes: f.size }, output: { container } });
    current = { id: job.id, stop: new AbortController(), previewDone: false, container };
    el.prog.hidden = false;
    el.jobId.textContent = job.id;
    el.upBar.value = 0;
    el.frBar.removeAttribute('value');
    el.upText.textContent = el.frText.textContent = '';
    listJobs();
    follow(current).catch((err) => { if (err.name !== 'AbortError') say('Progress stream: ' + err.message, true); });
    await upload(current, f);
    el.start.disabled = !file;
  }

  function upload(job, f) {
    return new Promise((resolve, reject) => {
      const up = new window.tus.Upload(f, {
        endpoint: '/v1/uploads',
        metadata: { job_id: job.id, filename: f.name },
        headers: headers(),
        retryDelays: [0, 500, 1000, 2000, 4000, 8000],
        storeFingerprintForResuming: false, // resumes within this page (network cuts), not across reloads
        onProgress: (sent, total) => {
          const pct = total ? (100 * sent) / total : 0;
          el.upBar.value = pct;
          el.upText.textContent = pct.toFixed(0) + ' %';
        },
        onError: (err) => { say('Upload failed: ' + err.message, true); reject(err); },
        onSuccess: () => { el.upBar.value = 100; el.upText.textContent = '100 % — uploaded'; resolve(); },
      });
      job.upload = up;
      up.start();
    });
  }

  // Server-sent events over fetch (so that the token can go in a header).
  async function follow(job) {
    const res = await fetch('/v1/jobs/' + job.id + '/events', { headers: headers(), signal: job.stop.signal });
    if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let ev = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) ev = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (data) onEvent(job, ev, JSON.parse(data));
      }
    }
  }

  function onEvent(job, ev, data) {
    if (job !== current) return;
    if (ev === 'error') { say('Job failed: ' + data.error.code + ': ' + data.error.message, true); return; }
    if (!data.id) return; // "done" of a deleted job: {}
    const fps = data.fps || 0;
    const left = Math.max(0, data.frames_in - data.frames_out);
    const eta = fps > 0 && data.input.complete ? ' — ETA ' + Math.ceil(left / fps) + ' s' : '';
    el.frText.textContent = data.frames_out + ' / ' + data.frames_in + ' frames' + (fps ? ', ' + fps.toFixed(1) + ' frames/s' : '') + eta;
    if (data.state === 'succeeded') { el.frBar.max = 1; el.frBar.value = 1; }
    say('State: ' + data.state + (data.input.width ? ' — ' + data.input.width + '×' + data.input.height + ' → ' +
        data.output.width + '×' + data.output.height : ''));
    if (data.frames_out > 0 && !job.previewDone) { job.previewDone = true; showPreview(job); }
    if (ev === 'done') {
      if (data.state === 'succeeded') { say('Done: ' + data.frames_out + ' frames, ' + data.output.bytes + ' bytes'); showResult(job, data); }
      listJobs();
    }
  }

  async function fetchBlobUrl(path, signal) {
    for (let i = 0; i < 60; i++) { // 409 = not processed yet: retry as Retry-After says
      const res = await fetch(path, { headers: headers(), signal });
      if (res.ok) {
        const u = URL.createObjectURL(await res.blob());
        objectUrls.push(u);
        return u;
      }
      if (res.status !== 409) throw new Error('HTTP ' + res.status + ' for ' + path);
      await new Promise((r) => setTimeout(r, 1000 * (Number(res.headers.get('Retry-After')) || 1)));
    }
    throw new Error('gave up waiting for ' + path);
  }

  async function showPreview(job) {
    try {
      const base = '/v1/jobs/' + job.id + '/preview?frame=0&side=';
      const [lr, sr] = await Promise.all([fetchBlobUrl(base + 'lr', job.stop.signal), fetchBlobUrl(base + 'sr', job.stop.signal)]);
      if (job !== current) return;
      await Promise.all([load(el.lr, lr), load(el.sr, sr)]);
      el.sizes.textContent = 'before ' + el.lr.naturalWidth + '×' + el.lr.naturalHeight + ', after ' + el.sr.naturalWidth + '×' + el.sr.naturalHeight;
      el.cmp.hidden = false;
      applySlider();
    } catch (e) {
      if (e.name !== 'AbortError') say('Preview: ' + e.message, true);
    }
  }

  function load(img, url) {
    return new Promise((resolve, reject) => { img.onload = resolve; img.onerror = () => reject(new Error('bad image')); img.src = url; });
  }

  function applySlider() { el.sr.style.clipPath = 'inset(0 0 0 ' + el.slider.value + '%)'; }
  el.slider.addEventListener('input', applySlider);

  async function showResult(job) {
    const path = '/v1/jobs/' + job.id + '/output';
    const name = job.id + (job.container === 'mp4' ? '.mp4' : '.mkv');
    el.download.download = name;
    if (el.token.value.trim()) {
      // a link cannot carry the token: fetch the file, then offer it from memory
      const u = await fetchBlobUrl(path, job.stop.signal);
      el.download.href = u;
      el.video.src = u;
    } else {
      el.download.href = path;
      el.video.src = path;
    }
    el.res.hidden = false;
  }

  // ---- the job list ----
  async function listJobs() {
    try {
      const data = await api('GET', '/v1/jobs?limit=50');
      el.jobsMsg.textContent = data.jobs.length ? (data.next ? 'Showing the newest 50.' : '') : 'No jobs yet.';
      el.jobs.replaceChildren(...data.jobs.map(row));
    } catch (e) {
      el.jobsMsg.textContent = e.status === 401 ? 'Enter your access token to see your jobs.' : 'Cannot list jobs: ' + e.message;
    }
  }

  function cell(text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function row(j) {
    const tr = document.createElement('tr');
    tr.append(cell(j.id, 'mono'), cell(j.state), cell(j.frames_out + ' / ' + j.frames_in), cell(new Date(j.created_at).toLocaleTimeString()));
    const td = document.createElement('td');
    const done = j.state === 'succeeded' || j.state === 'failed' || j.state === 'cancelled';
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = done ? 'Delete' : 'Cancel';
    b.setAttribute('aria-label', b.textContent + ' job ' + j.id);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        if (current && current.id === j.id) { if (current.upload) current.upload.abort(false); current.stop.abort(); }
        await api('DELETE', '/v1/jobs/' + j.id);
      } catch (e) { el.jobsMsg.textContent = 'Cancel failed: ' + e.message; }
      listJobs();
    });
    td.append(b);
    tr.append(td);
    return tr;
  }

  el.refresh.addEventListener('click', listJobs);
  setInterval(() => { if (!document.hidden) listJobs(); }, 5000);
  listJobs();
})();
