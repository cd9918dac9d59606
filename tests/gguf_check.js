// gguf_check.js - an independent reading of a GGUF file the engine exported (common/nn/gguf.c),
// for tests/test_nn_gguf.c: the file is parsed by Hugging Face's @huggingface/gguf (npm, installed
// by deploy/setup.sh under the build directory), the checkpoint it came from is read here from
// its config.json and model.safetensors, and everything llama.cpp relies on is compared:
//  - metadata: keys, values and GGUF value types of the llama hyperparameters, rope scaling
//    (linear: the scaling keys; llama3: rope_freqs.weight recomputed here as
//    convert_hf_to_gguf.py does), the tokenizer (tokens, token types, merges, special ids);
//  - tensors: llama.cpp's names, shapes (innermost first), types (F32, or F16 for matrices when
//    asked), 32-byte aligned offsets, and every value: F32 bit for bit, F16 within half a unit in
//    the last place, q and k with the rows permuted as convert_hf_to_gguf.py's LlamaModel.permute.
//
//   node tests/gguf_check.js NPM_DIR FILE.gguf CHECKPOINT_DIR f32|f16 [TOKENIZER.json]
// Prints what it checked; exits 1 on the first difference, naming it.
"use strict";
const fs = require("fs");
const path = require("path");

const [npmDir, file, ckpt, dtype, tokPath] = process.argv.slice(2);
const { gguf } = require(path.join(path.resolve(npmDir), "node_modules", "@huggingface", "gguf"));
const T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STR = 8, T_ARR = 9;

function fail(msg) {
    console.error("gguf_check: " + file + ": " + msg);
    process.exit(1);
}

function f32(x) {
    return Math.fround(x);
}

// safetensors: 8-byte little-endian header length, JSON header, data (F32 only here)
function readSafetensors(p) {
    const buf = fs.readFileSync(p);
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
    const out = {};
    for (const [name, e] of Object.entries(header)) {
        if (name === "__metadata__") continue;
        if (e.dtype !== "F32") fail(`${p}: ${name} is ${e.dtype}, this reader takes F32`);
        const [s, t] = e.data_offsets;
        const data = new Float32Array(buf.buffer.slice(buf.byteOffset + 8 + n + s, buf.byteOffset + 8 + n + t));
        out[name] = { shape: e.shape, data };
    }
    return out;
}

function halfToFloat(h) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e === 0) return s * m * Math.pow(2, -24);
    if (e === 31) return m ? NaN : s * Infinity;
    return s * (1 + m / 1024) * Math.pow(2, e - 15);
}

// half a unit in the last place of v as a half (normal or subnormal)
function halfUlpHalf(v) {
    const a = Math.abs(v);
    if (a < Math.pow(2, -14)) return Math.pow(2, -25);
    return Math.pow(2, Math.floor(Math.log2(a)) - 11);
}

function bytesToUnicode() {
    const bs = [];
    for (let b = 33; b <= 126; b++) bs.push(b);
    for (let b = 161; b <= 172; b++) bs.push(b);
    for (let b = 174; b <= 255; b++) bs.push(b);
    const cs = bs.slice();
    let n = 0;
    for (let b = 0; b < 256; b++) {
        if (!bs.includes(b)) {
            bs.push(b);
            cs.push(256 + n);
            n++;
        }
    }
    const map = new Array(256);
    bs.forEach((b, i) => (map[b] = String.fromCodePoint(cs[i])));
    return map;
}

function llama3Factors(cfg) {
    const rs = cfg.rope_scaling, D = cfg.hidden_size / cfg.num_attention_heads;
    const out = [];
    for (let i = 0; i < D; i += 2) {
        const freq = f32(1 / f32(Math.pow(cfg.rope_theta, f32(i / D))));
        const old = rs.original_max_position_embeddings;
        const wavelen = (2 * Math.PI) / freq;
        if (wavelen < old / rs.high_freq_factor) out.push(1);
        else if (wavelen > old / rs.low_freq_factor) out.push(rs.factor);
        else {
            const smooth = (old / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
            out.push(1 / ((1 - smooth) / rs.factor + smooth));
        }
    }
    return out;
}

(async () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(ckpt, "config.json"), "utf8"));
    const st = readSafetensors(path.join(ckpt, "model.safetensors"));
    const r = await gguf(file, { allowLocalFile: true, typedMetadata: true });
    const md = r.typedMetadata;
    let nmeta = 0;
    function expectKey(key, type, value, tol) {
        const e = md[key];
        if (!e) fail(`metadata ${key} is missing`);
        if (e.type !== type) fail(`metadata ${key} has GGUF type ${e.type}, want ${type}`);
        const ok = tol ? Math.abs(e.value - value) <= tol : e.value === value;
        if (!ok) fail(`metadata ${key} is ${e.value}, want ${value}`);
        nmeta++;
    }
    if (r.metadata.version !== 3) fail(`version ${r.metadata.version}, want 3`);
    const H = cfg.num_attention_heads, KVH = cfg.num_key_value_heads, C = cfg.hidden_size;
    const D = C / H, rs = cfg.rope_scaling || {};
    const rtype = rs.rope_type || rs.type || "default";
    expectKey("general.architecture", T_STR, "llama");
    expectKey("general.file_type", T_U32, dtype === "f16" ? 1 : 0);
    expectKey("llama.vocab_size", T_U32, cfg.vocab_size);
    expectKey("llama.context_length", T_U32, cfg.max_position_embeddings);
    expectKey("llama.embedding_length", T_U32, C);
    expectKey("llama.block_count", T_U32, cfg.num_hidden_layers);
    expectKey("llama.feed_forward_length", T_U32, cfg.intermediate_size);
    expectKey("llama.attention.head_count", T_U32, H);
    expectKey("llama.attention.head_count_kv", T_U32, KVH);
    expectKey("llama.rope.freq_base", T_F32, f32(cfg.rope_theta));
    expectKey("llama.rope.dimension_count", T_U32, D);
    expectKey("llama.attention.layer_norm_rms_epsilon", T_F32, f32(cfg.rms_norm_eps));
    if (rtype === "linear") {
        expectKey("llama.rope.scaling.type", T_STR, "linear");
        expectKey("llama.rope.scaling.factor", T_F32, f32(rs.factor));
    } else if (md["llama.rope.scaling.type"]) {
        fail(`llama.rope.scaling.type set for rope type ${rtype}`);
    }

    // the tokenizer
    expectKey("tokenizer.ggml.model", T_STR, "gpt2");
    const tokens = md["tokenizer.ggml.tokens"], types = md["tokenizer.ggml.token_type"];
    const merges = md["tokenizer.ggml.merges"];
    for (const [k, e, sub] of [["tokens", tokens, T_STR], ["token_type", types, T_I32], ["merges", merges, T_STR]]) {
        if (!e || e.type !== T_ARR || e.subType !== sub) fail(`tokenizer.ggml.${k} is not an array of type ${sub}`);
    }
    if (tokens.value.length !== cfg.vocab_size || types.value.length !== cfg.vocab_size)
        fail(`${tokens.value.length} tokens and ${types.value.length} types for a vocabulary of ${cfg.vocab_size}`);
    const want = new Array(cfg.vocab_size), wantType = new Array(cfg.vocab_size);
    let wantMerges = [], wantPre, wantBos = false;
    if (!tokPath) {
        bytesToUnicode().forEach((s, b) => { want[b] = s; wantType[b] = 1; });
        ["<bos>", "<eos>", "<pad>"].forEach((s, i) => { want[256 + i] = s; wantType[256 + i] = 3; });
        wantPre = "gpt-2";
    } else {
        const tj = JSON.parse(fs.readFileSync(tokPath, "utf8"));
        for (const [s, id] of Object.entries(tj.model.vocab)) { want[id] = s; wantType[id] = 1; }
        for (const a of tj.added_tokens || []) { want[a.id] = a.content; wantType[a.id] = a.special ? 3 : 4; }
        wantMerges = tj.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m));
        const pre = tj.pre_tokenizer;
        wantPre = pre.type === "ByteLevel" ? "gpt-2"
            : pre.pretokenizers[0].type === "Digits" ? "smollm" : "llama-bpe";
        wantBos = !!(tj.post_processor && JSON.stringify(tj.post_processor).includes("SpecialToken"));
    }
    for (let i = 0; i < cfg.vocab_size; i++) {
        const w = want[i] === undefined ? `[PAD${i}]` : want[i], wt = wantType[i] === undefined ? 5 : wantType[i];
        if (tokens.value[i] !== w) fail(`token ${i} is ${JSON.stringify(tokens.value[i])}, want ${JSON.stringify(w)}`);
        if (types.value[i] !== wt) fail(`token ${i} has type ${types.value[i]}, want ${wt}`);
    }
    if (JSON.stringify(merges.value) !== JSON.stringify(wantMerges))
        fail(`merges differ: ${merges.value.length} written, ${wantMerges.length} in the tokenizer`);
    expectKey("tokenizer.ggml.pre", T_STR, wantPre);
    for (const [key, id] of [["bos", cfg.bos_token_id], ["eos", cfg.eos_token_id], ["padding", cfg.pad_token_id]]) {
        if (id === null || id === undefined) continue;
        expectKey(`tokenizer.ggml.${key}_token_id`, T_U32, id);
    }
    expectKey("tokenizer.ggml.add_bos_token", T_BOOL, wantBos);

    // the tensors
    const fd = fs.openSync(file, "r");
    const base = Number(r.tensorDataOffset);
    if (base % 32) fail(`tensor data starts at ${base}, not 32-byte aligned`);
    const byName = new Map(r.tensorInfos.map((t) => [t.name, t]));
    const expected = [];
    const layer = { "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm" };
    for (const [name, t] of Object.entries(st)) {
        let g;
        if (name === "model.embed_tokens.weight") g = "token_embd.weight";
        else if (name === "model.norm.weight") g = "output_norm.weight";
        else if (name === "lm_head.weight") g = cfg.tie_word_embeddings ? null : "output.weight";
        else if (name === "score.weight") g = null; // no place in llama.cpp's llama
        else {
            const m = name.match(/^model\.layers\.(\d+)\.(.*)\.weight$/);
            if (!m || !layer[m[2]]) fail(`checkpoint tensor ${name} has no llama.cpp name here`);
            g = `blk.${m[1]}.${layer[m[2]]}.weight`;
        }
        if (!g) continue;
        let data = t.data;
        const heads = name.endsWith("q_proj.weight") ? H : name.endsWith("k_proj.weight") ? KVH : 0;
        if (heads) {
            // reshape(heads, 2, rows / heads / 2, cols).swapaxes(1, 2)
            const rows = t.shape[0], cols = t.shape[1], half = rows / heads / 2;
            data = new Float32Array(rows * cols);
            for (let h = 0; h < heads; h++)
                for (let a = 0; a < 2; a++)
                    for (let b = 0; b < half; b++)
                        data.set(t.data.subarray(((h * 2 + a) * half + b) * cols, ((h * 2 + a) * half + b + 1) * cols),
                            ((h * half + b) * 2 + a) * cols);
        }
        expected.push({ g, shape: t.shape.slice().reverse(), data, type: t.shape.length === 2 && dtype === "f16" ? 1 : 0 });
    }
    if (rtype === "llama3")
        expected.push({ g: "rope_freqs.weight", shape: [D / 2], data: Float32Array.from(llama3Factors(cfg)), type: 0, tol: 1e-6 });
    if (expected.length !== r.tensorInfos.length)
        fail(`${r.tensorInfos.length} tensors in the file, ${expected.length} expected`);
    let nvals = 0, worst = 0;
    for (const e of expected) {
        const ti = byName.get(e.g);
        if (!ti) fail(`tensor ${e.g} is missing`);
        const shape = ti.shape.map(Number);
        if (JSON.stringify(shape) !== JSON.stringify(e.shape)) fail(`${e.g}: shape [${shape}], want [${e.shape}]`);
        if (ti.dtype !== e.type) fail(`${e.g}: ggml type ${ti.dtype}, want ${e.type}`);
        if (Number(ti.offset) % 32) fail(`${e.g}: offset ${ti.offset} is not 32-byte aligned`);
        const n = e.data.length, size = e.type === 1 ? 2 : 4;
        const buf = Buffer.alloc(n * size);
        fs.readSync(fd, buf, 0, n * size, base + Number(ti.offset));
        for (let i = 0; i < n; i++) {
            const w = e.data[i];
            if (e.type === 0) {
                const got = buf.readFloatLE(i * 4);
                if (e.tol ? !(Math.abs(got - w) <= e.tol * Math.abs(w)) : got !== w)
                    fail(`${e.g}[${i}] is ${got}, want ${w}`);
            } else {
                const got = halfToFloat(buf.readUInt16LE(i * 2));
                const err = Math.abs(got - w);
                if (!(err <= halfUlpHalf(w))) fail(`${e.g}[${i}] is ${got} as F16, want ${w} rounded`);
                if (Math.abs(w) >= Math.pow(2, -14)) worst = Math.max(worst, err / Math.abs(w));
            }
            nvals++;
        }
    }
    fs.closeSync(fd);
    console.log(`gguf_check: ${file}: ${nmeta} metadata keys, ${cfg.vocab_size} tokens, ` +
        `${merges.value.length} merges, ${expected.length} tensors, ${nvals} values as written` +
        (dtype === "f16" ? ` (F16 worst relative error ${worst.toExponential(2)} over normal halves)` : " (F32 bit for bit)"));
})().catch((e) => fail(e && e.stack ? e.stack : String(e)));
