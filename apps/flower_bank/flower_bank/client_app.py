"""ClientApp: one bank. Receives the global model, trains it on the bank's own loans with the course's client
step (learnstrat_helpers.federated.train), and sends back only the parameters and the number of loans. It has
no evaluate function: the server evaluates the global model on the held-out loans (fraction_evaluate=0).

Explained in 04, section "Part 3: the same strategy on Flower".
"""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from learnstrat_helpers import federated

from .task import load_bank, make_model

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    partition_id = int(context.node_config["partition-id"])
    x, y = load_bank(partition_id, int(context.node_config["num-partitions"]))
    model = make_model(x.shape[1])
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    cfg = context.run_config
    server_round = int(msg.content["config"]["server-round"])
    report = federated.train(model, x, y, epochs=int(cfg["local-epochs"]), batch_size=int(cfg["batch-size"]),
                             lr=float(cfg["lr"]), seed=int(cfg["seed"]) + 1000 * server_round + partition_id)
    metrics = MetricRecord({"train_loss": report["loss"], "num-examples": report["num-examples"]})
    return Message(content=RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)
