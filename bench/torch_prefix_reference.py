# PyTorch reference for teacher scoring with shared-prefix KV reuse (Qwen3-8B shape, random weights, bf16).
# Copied from shared/bench/torch_prefix_reference.py (the PyTorch reference of issue 9); run by bench/gpu_bench.sh.
# Run on the GPU machine: python3 torch_prefix_reference.py  (writes $OUT/prefix.json)
import os, time, statistics, json, copy, torch
from transformers import Qwen3Config, Qwen3Model
OUT=os.environ.get("OUT","out"); os.makedirs(OUT,exist_ok=True)
cfg=Qwen3Config(vocab_size=151669,hidden_size=4096,intermediate_size=12288,num_hidden_layers=36,num_attention_heads=32,
 num_key_value_heads=8,head_dim=128,max_position_embeddings=40960,rms_norm_eps=1e-6,tie_word_embeddings=False,
 rope_parameters={"rope_type":"default","rope_theta":1000000.0},pad_token_id=151643)
with torch.device("cuda"):
    m=Qwen3Model._from_config(cfg,attn_implementation="sdpa",dtype=torch.bfloat16)
m.eval(); yn=(torch.randn(2,4096,device="cuda")*0.02).to(torch.bfloat16)
g=torch.Generator().manual_seed(0)
P=61   # shared prefix: system prompt + "<Instruct>: ...\n<Query>: " (real Qwen3 tokenizer count)
def timeit(fn,w=2,n=5):
    for _ in range(w): fn()
    torch.cuda.synchronize(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter()-t)
    return statistics.median(ts)
res=[]
prefix=torch.randint(0,151000,(1,P),generator=g).cuda()
with torch.inference_mode():
    out=m(input_ids=prefix,use_cache=True); pkv=out.past_key_values
print(type(pkv), [a for a in dir(pkv) if 'repeat' in a or 'layers' in a][:10], flush=True)
for B in (64,128,256):
    for S in (36,):   # per-pair tokens after the shared prefix: query ~12 + "\n<Document>: " 4 + doc ~11 + suffix 9
        ids=torch.randint(0,151000,(B,S),generator=g).cuda()
        mask=torch.ones(B,P+S,dtype=torch.long,device="cuda")
        def step():
            with torch.inference_mode():
                c=copy.deepcopy(pkv)
                if hasattr(c,"batch_repeat_interleave"): c.batch_repeat_interleave(B)
                else: raise RuntimeError("no batch_repeat_interleave")
                h=m(input_ids=ids,attention_mask=mask,past_key_values=c,use_cache=True).last_hidden_state[:,-1,:]
                s=h@yn.t(); return s[:,0]-s[:,1]
        try:
            t=timeit(step); r={"mode":"global_prefix_reuse","B":B,"suffix":S,"pairs_per_s":round(B/t,1)}
        except Exception as e:
            r={"mode":"global_prefix_reuse","B":B,"error":repr(e)[:300]}
        print(r,flush=True); res.append(r)
    # no reuse, same prompts (P+S tokens), for the same-run baseline
    ids=torch.randint(0,151000,(B,P+36),generator=g).cuda()
    def full():
        with torch.inference_mode():
            h=m(input_ids=ids,use_cache=False).last_hidden_state[:,-1,:]; s=h@yn.t(); return s[:,0]-s[:,1]
    t=timeit(full); r={"mode":"no_reuse_equal_len","B":B,"tokens":P+36,"pairs_per_s":round(B/t,1)}; print(r,flush=True); res.append(r)
# query-level reuse: 30 docs share prefix+query (P+16 tokens), unique part ~20 tokens (doc + suffix)
for B in (120,240):
    Q=B//30
    pre=torch.randint(0,151000,(Q,P+16),generator=g).cuda()
    ids=torch.randint(0,151000,(B,20),generator=g).cuda()
    mask=torch.ones(B,P+16+20,dtype=torch.long,device="cuda")
    def step():
        with torch.inference_mode():
            o=m(input_ids=pre,use_cache=True); c=o.past_key_values
            c.batch_repeat_interleave(30)
            h=m(input_ids=ids,attention_mask=mask,past_key_values=c,use_cache=True).last_hidden_state[:,-1,:]
            s=h@yn.t(); return s[:,0]-s[:,1]
    try:
        t=timeit(step); r={"mode":"query_prefix_reuse(30 docs/query)","B":B,"pairs_per_s":round(B/t,1)}
    except Exception as e:
        r={"mode":"query_prefix_reuse","B":B,"error":repr(e)[:300]}
    print(r,flush=True); res.append(r)
json.dump(res,open(f"{OUT}/prefix.json","w"),indent=1)
