#!/usr/bin/env bash
# The LibTorch command line: train a tiny network, sample it by path alone (the
# metadata fills in the rest), PNG grids for image models, errors that name the place.
source "$(dirname "$0")/cli_common.sh" "$1"

# A 2-D model: train, then sample it with nothing but its path.
printf '%s' '{"data":{"name":"8gaussians"},"network":{"name":"mlp","hidden":16,"layers":1,"embedding":8},"steps":20,"batch":32,"log_every":10,"threads":1}' > "$work/t.json"
"$bin" train "$work/t.json" --out "$work/m.pt" > "$work/t.out" 2>&1; rc=$?; check "train runs: $(cat "$work/t.out")" $rc
[ "$(wc -l < "$work/m.loss.jsonl")" -eq 2 ]; check "loss curve has 2 lines" $?
[ -s "$work/m.pt.state" ]; check "training state written" $?
printf '%s' '{"schedule":{"name":"vp_linear"},"model":{"name":"torchscript","path":"m.pt"},"grid":{"name":"logSNR","steps":5,"t_end":0.001},"solver":{"name":"ddim"},"batch":8}' > "$work/s.json"
"$bin" sample "$work/s.json" --out "$work/s.npy" > "$work/s.out" 2>&1; rc=$?; check "sample by path: $(cat "$work/s.out")" $rc
head -c 128 "$work/s.npy" | grep -qF "'shape': (8, 2)"; check "samples have shape (8, 2)" $?
"$bin" sample "$work/s.json" --out "$work/s2.npy" --grid "$work/g.png" > "$work/g.out" 2> "$work/g.err"
[ $? -eq 2 ] && grep -qF -- "--grid" "$work/g.err"; rc=$?; check "--grid on a 2-D model is an error: $(cat "$work/g.err")" $rc

# Resume continues to a larger step count.
printf '%s' "{\"data\":{\"name\":\"8gaussians\"},\"network\":{\"name\":\"mlp\",\"hidden\":16,\"layers\":1,\"embedding\":8},\"steps\":30,\"batch\":32,\"log_every\":10,\"threads\":1,\"resume\":\"m.pt\"}" > "$work/r.json"
"$bin" train "$work/r.json" --out "$work/m.pt" > "$work/r.out" 2>&1; rc=$?; check "resume runs: $(cat "$work/r.out")" $rc
grep -qF "trained steps 20..30" "$work/r.out"; check "resume starts at step 20" $?
[ "$(wc -l < "$work/m.loss.jsonl")" -eq 3 ]; check "resumed loss curve has 3 lines" $?

# An image model: a small U-Net on 64 Fashion-MNIST images (when installed) writes a PNG grid.
if [ -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  printf '%s' '{"data":{"name":"fashion_mnist","split":"test","limit":64},"network":{"name":"unet","channels":8,"multipliers":[1,2],"attention_resolution":14},"steps":2,"batch":4,"threads":1}' > "$work/u.json"
  "$bin" train "$work/u.json" --out "$work/u.pt" > "$work/u.out" 2>&1; rc=$?; check "unet trains: $(cat "$work/u.out")" $rc
  printf '%s' '{"schedule":{"name":"vp_linear"},"model":{"name":"torchscript","path":"u.pt"},"grid":{"name":"logSNR","steps":2,"t_end":0.001},"solver":{"name":"ddim"},"batch":4}' > "$work/us.json"
  "$bin" sample "$work/us.json" --out "$work/us.npy" > "$work/us.out" 2>&1; rc=$?; check "unet samples: $(cat "$work/us.out")" $rc
  head -c 8 "$work/us.png" | grep -qF "PNG"; check "PNG grid written beside the .npy" $?
fi

# A conditional network (scripted by PyTorch, when it is installed): its metadata declares
# y (10 classes), so "cond" gives the labels; a label out of range is an error at cond.y.
if /usr/bin/python3 -c 'import torch' > /dev/null 2>&1; then
  /usr/bin/python3 "$(dirname "$0")/torch/script_conditional_models.py" "$work"; rc=$?; check "conditional modules scripted" $rc
  printf '%s' '{"schedule":{"name":"vp_linear"},"model":{"name":"torchscript","path":"label.pt","dtype":"float64"},"grid":{"name":"logSNR","steps":3,"t_end":0.001},"solver":{"name":"ddim"},"batch":4,"cond":{"y":1}}' > "$work/c.json"
  "$bin" sample "$work/c.json" --out "$work/c.npy" > "$work/c.out" 2>&1; rc=$?; check "conditional sample: $(cat "$work/c.out")" $rc
  head -c 128 "$work/c.npy" | grep -qF "'shape': (4, 3)"; check "conditional samples have shape (4, 3)" $?
  sed 's/"y":1/"y":99/' "$work/c.json" > "$work/c99.json"
  "$bin" sample "$work/c99.json" --out "$work/c99.npy" > /dev/null 2> "$work/c99.err"
  [ $? -eq 2 ] && grep -qF "cond.y" "$work/c99.err"; rc=$?; check "label out of range names cond.y: $(cat "$work/c99.err")" $rc
  # forward(x, t, emb) with emb declared nowhere: an error at load that names the argument.
  printf '%s' '{"schedule":{"name":"vp_linear"},"model":{"name":"torchscript","path":"emb.pt"},"grid":{"name":"logSNR","steps":3},"solver":{"name":"ddim"},"batch":2}' > "$work/e.json"
  "$bin" sample "$work/e.json" --out "$work/e.npy" > /dev/null 2> "$work/e.err"
  [ $? -eq 2 ] && grep -qF "argument 'emb'" "$work/e.err"; rc=$?; check "undeclared forward argument named: $(cat "$work/e.err")" $rc
fi

# Errors name the place and exit 2; nothing is written.
printf '%s' '{"steps":-3}' > "$work/bad.json"
"$bin" train "$work/bad.json" --out "$work/bad.pt" > /dev/null 2> "$work/bad.err"
[ $? -eq 2 ] && grep -qF "steps" "$work/bad.err"; rc=$?; check "bad steps: $(cat "$work/bad.err")" $rc
[ ! -e "$work/bad.pt" ]; check "no model written for a bad config" $?
printf '%s' '{"schedule":{"name":"vp_linear"},"model":{"name":"torchscript","path":"nowhere.pt","shape":[2]},"grid":{"name":"logSNR","steps":2},"solver":{"name":"ddim"},"batch":2}' > "$work/missing.json"
"$bin" sample "$work/missing.json" --out "$work/x.npy" > /dev/null 2> "$work/missing.err"
[ $? -eq 2 ] && grep -qF "nowhere.pt" "$work/missing.err"; rc=$?; check "missing model file named: $(cat "$work/missing.err")" $rc

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
