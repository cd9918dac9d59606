// gguf_llama.mjs - llama.cpp itself on a GGUF file the engine exported, for tests/test_nn_gguf.c:
// node-llama-cpp's prebuilt llama.cpp (npm; optional, see deploy/setup.sh) loads the file and
// prints, as JSON, the next-token logits at every position of a token sequence (fp32 KV cache and
// no flash attention, whose CPU path rounds q to F16; one sequence) and its tokenization of a
// text (no special tokens parsed).
//
//   GGUF_TEXT=TEXT node tests/gguf_llama.mjs NPM_DIR FILE.gguf ID,ID,...
import path from "path";
import { pathToFileURL } from "url";

const [npmDir, file, ids] = process.argv.slice(2);
const text = process.env.GGUF_TEXT || "";
const entry = path.join(path.resolve(npmDir), "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: file });
const tokens = ids.split(",").map(Number);
const ctx = await model.createContext({
    contextSize: Math.max(64, tokens.length + 1),
    batchSize: Math.max(64, tokens.length + 1),
    sequences: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
});
const res = await ctx.getSequence().controlledEvaluate(tokens.map((t) => [t, { generateNext: { logits: true } }]));
const logits = res.map((r) => {
    const row = [];
    for (const [id, v] of r.next.logits) row[id] = v;
    return row;
});
process.stdout.write(JSON.stringify({ logits, tokens: Array.from(model.tokenize(text, false)) }) + "\n");
await ctx.dispose();
await model.dispose();
