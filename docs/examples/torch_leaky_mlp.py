"""Train a LeakyReLU MLP in PyTorch on MNIST and export it for `neuronatlas import`.

    python docs/examples/torch_leaky_mlp.py OUT_DIR
    neuronatlas import OUT_DIR/leaky.onnx --dataset mnist --run runs/leaky

Writes OUT_DIR/leaky.onnx (ONNX, opset 17) and OUT_DIR/leaky.safetensors (its state_dict,
which does not say its activations:
``neuronatlas import OUT_DIR/leaky.safetensors --dataset mnist --activation leaky_relu:0.1``).
The data come from neuronatlas's own MNIST loader, so nothing but torch (and onnx for the
export) is needed.
"""

import sys
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

import neuronatlas as na

out = Path(sys.argv[1] if len(sys.argv) > 1 else "leaky-export")
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
data = na.load_mnist()
x, y = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
net = torch.nn.Sequential(
    torch.nn.Linear(784, 256), torch.nn.LeakyReLU(0.1), torch.nn.Dropout(0.1),
    torch.nn.Linear(256, 128), torch.nn.LeakyReLU(0.1),
    torch.nn.Linear(128, 10),
)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for epoch in range(5):
    net.train()
    for idx in torch.randperm(len(x)).split(128):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(torch.from_numpy(data.test_x)).argmax(1).numpy() == data.test_y).mean()
    print(f"epoch {epoch + 1}: test accuracy {100 * acc:.2f}%")
save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out / "leaky.safetensors")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    torch.onnx.export(net, torch.zeros(1, 784), str(out / "leaky.onnx"), opset_version=17,
                      dynamo=False, input_names=["image"], dynamic_axes={"image": {0: "n"}})
print(f"written {out / 'leaky.onnx'} and {out / 'leaky.safetensors'}; PyTorch's test accuracy "
      f"{100 * acc:.2f}%")
