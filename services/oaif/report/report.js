/* report.js - draws `oaif report`'s page from the run's records, which cmd_report.c embeds as the
 * JSON of <script id="oaif-data">. Every number on the page comes from there; nothing is fetched.
 * When it is done the body's data-status is "ready" (every chart drew: each canvas has coloured
 * pixels inside its plot area, counted into data-painted) or "failed" (the reasons in #errors);
 * the title ends with the same word; each canvas's data-plot says where its plot area stands on
 * the page, and the body's data-height how tall the page is. tests/test_report_procs.c reads
 * these through headless Chromium, and checks a screenshot at each data-plot. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('oaif-data').textContent);
  var root = document.getElementById('report');
  var charts = [];
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
                '#17becf', '#bcbd22', '#7f7f7f'];

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v, d) {
    return (typeof v === 'number' && isFinite(v)) ? v.toFixed(d === undefined ? 4 : d) : '–';
  }
  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }
  function section(title, note) {
    root.appendChild(el('h2', {}, title));
    if (note) root.appendChild(el('p', {'class': 'sub'}, note));
    var g = el('div', {'class': 'grid'});
    root.appendChild(g);
    return g;
  }
  function missing(grid, what) { grid.appendChild(el('p', {'class': 'missing'}, what)); }

  /* One chart: a titled box with a canvas of fixed size (no animation, not responsive, so it is
   * drawn when the constructor returns). */
  function chart(grid, id, title, config, note) {
    var box = el('div', {'class': 'chart', 'data-chart': id});
    box.appendChild(el('h3', {}, title));
    var cv = el('canvas', {id: 'chart-' + id, width: 580, height: 290});
    box.appendChild(cv);
    if (note) box.appendChild(el('p', {'class': 'note'}, note));
    grid.appendChild(box);
    config.options = Object.assign({animation: false, responsive: false, parsing: true,
                                    plugins: {legend: {position: 'top'}}}, config.options || {});
    var points = 0;
    config.data.datasets.forEach(function (ds, i) {
      var c = ds.color || COLORS[i % COLORS.length];
      if (!ds.borderColor) ds.borderColor = c;
      if (!ds.backgroundColor) ds.backgroundColor = ds.fill ? alpha(c, 0.18) : c;
      if (ds.pointRadius === undefined && config.type !== 'bar') ds.pointRadius = 2;
      points += ds.data.length;
    });
    cv.setAttribute('data-points', points);
    charts.push({id: id, canvas: cv, chart: new Chart(cv, config)});
  }
  function xy(rows, fx, fy) {
    var out = [];
    rows.forEach(function (r) {
      var x = fx(r), y = fy(r);
      if (typeof x === 'number' && typeof y === 'number' && isFinite(y)) out.push({x: x, y: y});
    });
    return out;
  }
  function linear(xtitle, ytitle, extra) {
    var o = {scales: {x: {type: 'linear', title: {display: true, text: xtitle}},
                      y: {title: {display: true, text: ytitle}}}};
    return Object.assign(o, extra || {});
  }
  function metric(s, name) { return s.metrics && typeof s.metrics[name] === 'number' ? s.metrics[name] : null; }

  document.getElementById('title').textContent = 'oaif report: ' + D.run;
  document.getElementById('subtitle').textContent =
      'written ' + new Date(D.generated_ms).toISOString() + ' from the ledger at ' + D.ledger + ': ' +
      D.counts.evals + ' evaluations, ' + D.counts.steps + ' training steps, ' + D.counts.checkpoints +
      ' checkpoints, ' + D.counts.strengths + ' strengths, ' + D.counts.labels + ' judgements';

  var evals = D.evals, steps = D.steps;
  var evalByStep = evals.length > 0 && evals.every(function (e) { return typeof e.step === 'number'; });
  var ex = evalByStep ? function (e) { return e.step; } : function (e) { return e.version; };
  var exTitle = evalByStep ? 'training step' : 'policy version';
  var judges = [];
  evals.forEach(function (e) { if (judges.indexOf(e.judge) < 0) judges.push(e.judge); });

  /* ---- the latest evaluation, and all of them ---------------------------------------------- */
  var g = section('Evaluation against the baseline',
                  'Win rate with ties as ½ and its 95% bootstrap interval over prompts, the ' +
                  'length-controlled win rate, task accuracy, mean length in bytes and KL(π‖π_ref), ' +
                  'from the run\'s EvalResult records (one per version and judge).');
  if (!evals.length) {
    missing(g, 'No EvalResult records for this run.');
  } else {
    var last = evals[evals.length - 1];
    var t = el('table', {'class': 'big', id: 'latest'});
    var head = el('tr'), row = el('tr');
    [['version', last.version, 0], ['step', last.step, 0], ['judge', last.judge],
     ['win_rate', last.win_rate], ['win_rate_lo', last.win_rate_lo], ['win_rate_hi', last.win_rate_hi],
     ['lc_win_rate', last.lc_win_rate], ['wins', last.wins, 0], ['ties', last.ties, 0],
     ['losses', last.losses, 0], ['accuracy', last.accuracy], ['baseline_accuracy', last.baseline_accuracy],
     ['mean_length', last.mean_length, 1], ['baseline_mean_length', last.baseline_mean_length, 1],
     ['kl', last.has_kl ? last.kl : null], ['prompts', last.prompts, 0]]
    /* the reward ensemble's accuracy on held-out pairs, where the evaluator measured it */
    .concat(last.has_rm_accuracy ? [['rm_accuracy', last.rm_accuracy]] : []).forEach(function (c) {
      head.appendChild(el('th', {}, c[0].replace(/_/g, ' ')));
      row.appendChild(el('td', {'data-k': c[0]}, typeof c[1] === 'string' ? c[1] : fmt(c[1], c[2])));
    });
    t.appendChild(head);
    t.appendChild(row);
    g.appendChild(t);
    var all = el('table', {id: 'evals'});
    var cols = ['version', 'step', 'judge', 'win_rate', 'win_rate_lo', 'win_rate_hi', 'lc_win_rate',
                'accuracy', 'mean_length', 'kl'];
    if (evals.some(function (e) { return e.has_rm_accuracy; }))
      cols.push('rm_accuracy');
    var hr = el('tr');
    cols.forEach(function (c) { hr.appendChild(el('th', {}, c.replace(/_/g, ' '))); });
    all.appendChild(hr);
    evals.forEach(function (e) {
      var r = el('tr', {'data-version': e.version});
      cols.forEach(function (c) {
        var v = (c === 'kl' && !e.has_kl) || (c === 'rm_accuracy' && !e.has_rm_accuracy) ? null : e[c];
        var d = c === 'version' || c === 'step' ? 0 : c === 'mean_length' ? 1 : 4;
        r.appendChild(el('td', {'data-k': c}, typeof v === 'string' ? v : fmt(v, d)));
      });
      all.appendChild(r);
    });
    var g2 = section('All evaluations');
    g2.appendChild(all);
  }

  /* ---- charts over steps ------------------------------------------------------------------- */
  g = section('Over training', 'x: ' + exTitle + ' for evaluations (Checkpoint.step of the ' +
              'version evaluated), training step for the trainer\'s TrainStep records.');
  if (evals.length) {
    var wr = [];
    judges.forEach(function (j, k) {
      var es = evals.filter(function (e) { return e.judge === j; });
      var c = COLORS[(2 * k) % COLORS.length], suffix = judges.length > 1 ? ' (' + j + ')' : '';
      /* the trainer's own evaluations record no interval (prompts 0): no band at 0 for them */
      var banded = es.filter(function (e) { return e.prompts > 0; });
      if (banded.length) {
        wr.push({label: '95% interval' + suffix, data: xy(banded, ex, function (e) { return e.win_rate_hi; }),
                 color: c, borderWidth: 0, pointRadius: 0, fill: false});
        wr.push({label: '95% interval (lower bound)' + suffix, legend: false, data: xy(banded, ex, function (e) { return e.win_rate_lo; }),
                 color: c, borderWidth: 0, pointRadius: 0, fill: '-1'});
      }
      wr.push({label: 'win rate' + suffix, data: xy(es, ex, function (e) { return e.win_rate; }), color: c});
      if (banded.length)
        wr.push({label: 'LC win rate' + suffix, data: xy(banded, ex, function (e) { return e.lc_win_rate; }),
                 color: COLORS[(2 * k + 1) % COLORS.length], borderDash: [5, 3]});
    });
    chart(g, 'winrate', 'Win rate against the baseline', {type: 'line', data: {datasets: wr},
          options: {scales: {x: {type: 'linear', title: {display: true, text: exTitle}},
                             y: {min: 0, max: 1, title: {display: true, text: 'win rate'}}},
                    plugins: {legend: {labels: {filter: function (item, data) {
                      return data.datasets[item.datasetIndex].legend !== false; }}}}}},
          'Shaded: the 95% bootstrap interval of the win rate. 0.5 is a draw with the baseline.');
    chart(g, 'accuracy', 'Task accuracy', {type: 'line', data: {datasets: [
      {label: 'policy', data: xy(evals, ex, function (e) { return e.accuracy; })},
      {label: 'baseline', data: xy(evals, ex, function (e) { return e.baseline_accuracy; })}]},
      options: linear(exTitle, 'accuracy')});
  } else {
    missing(g, 'No evaluations: no win-rate or accuracy chart.');
  }
  /* --runs: settings side by side, each the mean over its runs (seeds) at each policy version
   * and, shaded, their range. */
  var settings = Object.keys(D.series || {});
  if (settings.length) {
    var sr = [];
    settings.forEach(function (pat, k) {
      var byV = {};
      D.series[pat].forEach(function (e) { (byV[e.version] = byV[e.version] || []).push(e.win_rate); });
      var vs = Object.keys(byV).map(Number).sort(function (a, b) { return a - b; });
      var row = function (f) { return vs.map(function (v) { return {x: v, y: f(byV[v])}; }); };
      var runs = {};
      D.series[pat].forEach(function (e) { runs[e.run] = 1; });
      var c = COLORS[k % COLORS.length], nr = Object.keys(runs).length;
      sr.push({label: 'range ' + pat, legend: false, color: c, borderWidth: 0, pointRadius: 0, fill: false,
               data: row(function (w) { return Math.max.apply(null, w); })});
      sr.push({label: 'range (lower bound) ' + pat, legend: false, color: c, borderWidth: 0, pointRadius: 0,
               fill: '-1', data: row(function (w) { return Math.min.apply(null, w); })});
      sr.push({label: pat + ' (mean of ' + nr + ' run' + (nr === 1 ? '' : 's') + ')', color: c,
               data: row(function (w) { return w.reduce(function (a, b) { return a + b; }, 0) / w.length; })});
    });
    chart(g, 'winrate-runs', 'Win rate against the baseline, by setting', {type: 'line', data: {datasets: sr},
          options: {scales: {x: {type: 'linear', title: {display: true, text: 'policy version'}},
                             y: {title: {display: true, text: 'win rate'}}},
                    plugins: {legend: {labels: {filter: function (item, data) {
                      return data.datasets[item.datasetIndex].legend !== false; }}}}}},
          'Each setting (oaif report --runs): the mean win rate of its runs at each policy version, ' +
          'shaded from the lowest to the highest of them.');
  }
  var lenSets = [];
  if (evals.length) {
    lenSets.push({label: 'eval: policy', data: xy(evals, ex, function (e) { return e.mean_length; })});
    lenSets.push({label: 'eval: baseline', data: xy(evals, ex, function (e) { return e.baseline_mean_length; })});
  }
  if (steps.length) {
    lenSets.push({label: 'train: chosen', data: xy(steps, function (s) { return s.step; }, function (s) { return metric(s, 'len_chosen'); })});
    lenSets.push({label: 'train: rejected', data: xy(steps, function (s) { return s.step; }, function (s) { return metric(s, 'len_rejected'); })});
  }
  if (lenSets.length)
    chart(g, 'length', 'Length', {type: 'line', data: {datasets: lenSets}, options: linear('step', 'length')},
          'Evaluations: mean answer length in bytes; training: mean tokens of the chosen and rejected responses.');
  var klSets = [];
  if (evals.some(function (e) { return e.has_kl; }))
    klSets.push({label: 'eval: KL(π‖π_ref)', data: xy(evals.filter(function (e) { return e.has_kl; }), ex, function (e) { return e.kl; })});
  if (steps.length)
    klSets.push({label: 'train: batch KL', data: xy(steps, function (s) { return s.step; }, function (s) { return metric(s, 'kl'); })});
  if (klSets.length)
    chart(g, 'kl', 'KL to the reference', {type: 'line', data: {datasets: klSets}, options: linear('step', 'KL (nats)')});
  else
    missing(g, 'No KL recorded.');

  if (steps.length) {
    var sx = function (s) { return s.step; };
    chart(g, 'loss', 'Training loss', {type: 'line', data: {datasets: [
      {label: 'loss', data: xy(steps, sx, function (s) { return metric(s, 'loss'); })}]},
      options: linear('training step', 'loss')});
    chart(g, 'margin', 'Reward margin and step accuracy', {type: 'line', data: {datasets: [
      {label: 'margin', data: xy(steps, sx, function (s) { return metric(s, 'margin'); }), yAxisID: 'y'},
      {label: 'step accuracy', data: xy(steps, sx, function (s) { return metric(s, 'accuracy'); }), yAxisID: 'y1'}]},
      options: linear('training step', 'margin', {scales: {x: {type: 'linear', title: {display: true, text: 'training step'}},
        y: {title: {display: true, text: 'margin'}},
        y1: {position: 'right', min: 0, max: 1, title: {display: true, text: 'accuracy'}, grid: {drawOnChartArea: false}}}})});
    var js = steps.filter(function (s) { return s.judge.labels > 0; });
    if (js.length) {
      chart(g, 'judge', 'Judge latency and cost', {type: 'line', data: {datasets: [
        {label: 'mean latency (ms)', data: xy(js, sx, function (s) { return s.judge.latency_ms; }), yAxisID: 'y'},
        {label: 'cost', data: xy(js, sx, function (s) { return s.judge.cost; }), yAxisID: 'y1'}]},
        options: linear('training step', 'ms', {scales: {x: {type: 'linear', title: {display: true, text: 'training step'}},
          y: {title: {display: true, text: 'latency (ms)'}},
          y1: {position: 'right', title: {display: true, text: 'cost (sum over the step\'s pairs)'}, grid: {drawOnChartArea: false}}}})},
        'Over the Label records of each step\'s pairs.');
      chart(g, 'disagreement', 'Judge order disagreement', {type: 'line', data: {datasets: [
        {label: 'mean |p_AB − (1 − p_BA)|', data: xy(js, sx, function (s) { return s.judge.disagreement; })}]},
        options: linear('training step', 'disagreement')});
    } else {
      missing(g, 'No Label records for the steps\' pairs: no judge charts.');
    }
    var reasons = [], actions = [];
    steps.forEach(function (s) {
      Object.keys(s.skipped).forEach(function (k) { if (reasons.indexOf(k) < 0) reasons.push(k); });
      Object.keys(s.strength).forEach(function (k) { if (actions.indexOf(k) < 0) actions.push(k); });
    });
    var bars = reasons.map(function (k) {
      return {label: 'set aside: ' + k, stack: 'skip', data: xy(steps, sx, function (s) { return s.skipped[k] || 0; })};
    }).concat(actions.map(function (k) {
      return {label: 'strength: ' + k, stack: 'strength', data: xy(steps, sx, function (s) { return s.strength[k] || 0; })};
    }));
    if (bars.length)
      chart(g, 'actions', 'Ties, failures, stale pairs and strength actions per step', {type: 'bar',
            data: {datasets: bars}, options: {scales: {x: {type: 'linear', stacked: true, title: {display: true, text: 'training step'}},
                                                       y: {stacked: true, title: {display: true, text: 'pairs'}}}}},
            'Left stack: pairs the trainer set aside since the step before (TrainStep.skip_reasons); right: the ' +
            'Strength records of the step\'s pairs by action.');
    else
      missing(g, 'No pair was set aside and no strength action was recorded.');
  } else {
    missing(g, 'No TrainStep records for this run: no training charts.');
  }

  /* ---- strength ------------------------------------------------------------------------------ */
  g = section('Preference strength', 'The Strength records of this run: μ and σ of r(chosen) − r(rejected) over the ensemble.');
  var S = D.strengths;
  if (!S || !S.n) {
    missing(g, 'No Strength records for this run.');
  } else {
    var st = el('table', {id: 'strength'});
    var sh = el('tr');
    ['action', 'pairs', 'share', 'mean μ', 'mean σ'].forEach(function (c) { sh.appendChild(el('th', {}, c)); });
    st.appendChild(sh);
    S.actions.forEach(function (a) {
      var r = el('tr', {'data-action': a.action});
      r.appendChild(el('td', {'data-k': 'action'}, a.action));
      r.appendChild(el('td', {'data-k': 'n'}, a.n));
      r.appendChild(el('td', {'data-k': 'share'}, fmt(a.n / S.n)));
      r.appendChild(el('td', {'data-k': 'mean_mu'}, fmt(a.mean_mu)));
      r.appendChild(el('td', {'data-k': 'mean_sigma'}, fmt(a.mean_sigma)));
      st.appendChild(r);
    });
    g.appendChild(st);
    var lo = Math.min.apply(null, S.mu), hi = Math.max.apply(null, S.mu);
    var nb = Math.max(1, Math.min(30, Math.ceil(Math.sqrt(S.mu.length)))), w = (hi - lo) / nb || 1;
    var counts = new Array(nb).fill(0);
    S.mu.forEach(function (m) { counts[Math.min(nb - 1, Math.floor((m - lo) / w))]++; });
    chart(g, 'strength', 'Histogram of μ', {type: 'bar', data: {datasets: [{label: 'pairs',
          data: counts.map(function (c, i) { return {x: lo + (i + 0.5) * w, y: c}; }), barPercentage: 1, categoryPercentage: 1}]},
          options: {scales: {x: {type: 'linear', title: {display: true, text: 'μ'}}, y: {title: {display: true, text: 'pairs'}}}}},
          S.mu.length + ' strengths in ' + nb + ' bins of width ' + fmt(w) + '.');
  }

  /* ---- reward-model features ------------------------------------------------------------------ */
  g = section('Reward-model features', D.features ? 'From ' + D.features.path + ' (oaif rm features): the ' +
              'last hidden state of each response projected on its first two principal components.' : null);
  if (!D.features || !D.features.rows.length) {
    missing(g, 'No feature projection given (oaif report --features FILE.csv, the CSV of oaif rm features).');
  } else {
    var F = D.features.rows, sets = [];
    [['chosen', 1], ['chosen', 0], ['rejected', 1], ['rejected', 0]].forEach(function (k) {
      var rows = F.filter(function (r) { return r.side === k[0] && (r.noise_flipped === 1) === (k[1] === 0); });
      if (rows.length)
        sets.push({label: k[0] + (k[1] ? '' : ' (label flipped by noise)'), pointRadius: 3,
                   data: rows.map(function (r) { return {x: r.pc1, y: r.pc2}; })});
    });
    chart(g, 'features', 'Projection on two principal components', {type: 'scatter', data: {datasets: sets},
          options: {scales: {x: {type: 'linear', title: {display: true, text: 'pc1'}}, y: {title: {display: true, text: 'pc2'}}}}});
  }

  /* ---- sample answers -------------------------------------------------------------------------- */
  g = section('Sample answers', D.samples.note);
  if (!D.samples.rows.length) {
    missing(g, 'No answers to show.');
  } else {
    var at = el('table', {id: 'samples'});
    var ah = el('tr');
    ['prompt', 'baseline (v' + D.samples.baseline_version + ')', 'policy (v' + D.samples.policy_version + ')'].forEach(function (c) {
      ah.appendChild(el('th', {}, c));
    });
    at.appendChild(ah);
    D.samples.rows.forEach(function (s) {
      var r = el('tr');
      r.appendChild(el('td', {'class': 'text'}, s.prompt));
      r.appendChild(el('td', {'class': 'text'}, s.baseline));
      r.appendChild(el('td', {'class': 'text'}, s.policy));
      at.appendChild(r);
    });
    g.appendChild(at);
  }

  /* ---- did every chart draw? ----------------------------------------------------------------- */
  var bad = [];
  charts.forEach(function (c) {
    var a = c.chart.chartArea, r = window.devicePixelRatio || 1;
    var x0 = Math.floor(a.left * r), y0 = Math.floor(a.top * r);
    var w = Math.max(1, Math.floor((a.right - a.left) * r)), h = Math.max(1, Math.floor((a.bottom - a.top) * r));
    var px = c.canvas.getContext('2d').getImageData(x0, y0, w, h).data, n = 0;
    /* Grid lines and text are grey; a data point, line, bar or band is coloured. */
    for (var i = 0; i < px.length; i += 4)
      if (px[i + 3] > 0 && Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 40) n++;
    c.canvas.setAttribute('data-painted', n);
    /* Where the plot area stands on the page, in CSS pixels (left, top, right, bottom), for a
     * check of a screenshot that does not trust this count. */
    var b = c.canvas.getBoundingClientRect();
    c.canvas.setAttribute('data-plot', [Math.round(b.left + window.scrollX + a.left),
                                        Math.round(b.top + window.scrollY + a.top),
                                        Math.round(b.left + window.scrollX + a.right),
                                        Math.round(b.top + window.scrollY + a.bottom)].join(','));
    if (n === 0) bad.push('chart ' + c.id + ' drew nothing in its plot area');
  });
  document.body.setAttribute('data-charts', charts.length);
  document.body.setAttribute('data-height', Math.ceil(document.documentElement.scrollHeight));
  var errs = window.oaifErrors.concat(bad);
  document.getElementById('errors').textContent = errs.join('\n');
  document.body.setAttribute('data-status', errs.length ? 'failed' : 'ready');
  document.title = 'oaif report: ' + D.run + (errs.length ? ' (failed)' : ' (ready)');
})();
