"""pytorch/examples-style programs at tiny sizes, written against `torch`.

tests/compat/test_tutorial_examples.py imports this file twice: as is (the torch
reference) and through porting.torch_as_ember (every `torch` below is ember). Each
program takes its data and any random draws (noise, dropout off) as numpy arrays so
both runs compute the same numbers once their weights are copied over.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.distributions import Categorical
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


# --- mnist: CNN + dropout + log_softmax + nll_loss, Adadelta + StepLR ---------------------
class MnistNet(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(8 * 3 * 3, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def mnist_train(model, images, labels, epochs=2):
    loader = DataLoader(TensorDataset(torch.from_numpy(images), torch.from_numpy(labels)),
                        batch_size=4, shuffle=False)
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    losses = []
    for _ in range(epochs):
        model.train()
        for data, target in loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in loader:
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return losses, test_loss / len(loader.dataset), correct


# --- dcgan: ConvTranspose2d generator, BatchNorm, LeakyReLU, BCELoss ----------------------
class Generator(nn.Module):
    def __init__(self, nz=4, ngf=8):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, ndf=8):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


def dcgan_weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def dcgan_train(netG, netD, real_batches, noise_batches):
    criterion = nn.BCELoss()
    real_label, fake_label = 1.0, 0.0
    optimizerD = optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))
    log = []
    for real_np, noise_np in zip(real_batches, noise_batches):
        real = torch.from_numpy(real_np)
        noise = torch.from_numpy(noise_np)
        netD.zero_grad()
        label = torch.full((real.size(0),), real_label, dtype=torch.float)
        output = netD(real)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        optimizerG.step()
        log.append([errD.item(), errG.item(), D_x, D_G_z1, output.mean().item()])
    return log


# --- vae: reparameterization, BCE + KL ----------------------------------------------------
class VAE(nn.Module):
    def __init__(self, n_in=16, hidden=8, latent=2):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, n_in)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar, eps):
        std = torch.exp(0.5 * logvar)
        return mu + eps * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x, eps):
        mu, logvar = self.encode(x.view(-1, 16))
        return self.decode(self.reparameterize(mu, logvar, eps)), mu, logvar


def vae_loss(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 16), reduction="sum")
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def vae_train(model, data, eps_batches):
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for x_np, eps_np in zip(data, eps_batches):
        x = torch.from_numpy(x_np)
        optimizer.zero_grad()
        recon, mu, logvar = model(x, torch.from_numpy(eps_np))
        loss = vae_loss(recon, x, mu, logvar)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        sample = model.decode(torch.zeros(2, 2))
    return losses, sample.numpy()


# --- word_language_model: Embedding + LSTM/GRU + tied decoder, truncated BPTT ------------
class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.0, tie_weights=True):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].view(-1)


def word_lm_train(model, tokens, bptt=5, lr=5.0, clip=0.25):
    train_data = batchify(torch.tensor(tokens), 3)
    criterion = nn.NLLLoss()
    model.train()
    hidden = model.init_hidden(3)
    losses = []
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
        data, targets = get_batch(train_data, i, bptt)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        output, _ = model(train_data[:4], model.init_hidden(3))
    return losses, math.exp(losses[-1]), output.numpy()


# --- seq2seq: GRU encoder, attention decoder with bmm, teacher forcing -------------------
class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)

    def forward(self, input):
        return self.gru(self.embedding(input))


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)
        weights = F.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size, max_length):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.max_length = max_length

    def forward(self, encoder_outputs, encoder_hidden, target_tensor=None):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.empty(batch_size, 1, dtype=torch.long).fill_(0)
        decoder_hidden = encoder_hidden
        outputs, attentions = [], []
        for i in range(self.max_length):
            embedded = self.embedding(decoder_input)
            query = decoder_hidden.permute(1, 0, 2)
            context, attn = self.attention(query, encoder_outputs)
            output, decoder_hidden = self.gru(torch.cat((embedded, context), dim=2),
                                              decoder_hidden)
            output = self.out(output)
            outputs.append(output)
            attentions.append(attn)
            if target_tensor is not None:
                decoder_input = target_tensor[:, i].unsqueeze(1)       # teacher forcing
            else:
                _, topi = output.topk(1)
                decoder_input = topi.squeeze(-1).detach()
        outputs = F.log_softmax(torch.cat(outputs, dim=1), dim=-1)
        return outputs, decoder_hidden, torch.cat(attentions, dim=1)


def seq2seq_train(encoder, decoder, inputs, targets, steps=3):
    enc_opt = optim.Adam(encoder.parameters(), lr=0.01)
    dec_opt = optim.Adam(decoder.parameters(), lr=0.01)
    criterion = nn.NLLLoss()
    inp, tgt = torch.from_numpy(inputs), torch.from_numpy(targets)
    losses = []
    for _ in range(steps):
        enc_opt.zero_grad()
        dec_opt.zero_grad()
        enc_out, enc_hidden = encoder(inp)
        dec_out, _, _ = decoder(enc_out, enc_hidden, tgt)
        loss = criterion(dec_out.view(-1, dec_out.size(-1)), tgt.view(-1))
        loss.backward()
        enc_opt.step()
        dec_opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        enc_out, enc_hidden = encoder(inp)
        dec_out, _, attn = decoder(enc_out, enc_hidden)
        decoded = dec_out.topk(1)[1].squeeze(-1)
    return losses, decoded.tolist(), attn.numpy()


# --- spatial transformer: localization net -> affine_grid -> grid_sample -----------------
class STNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.localization = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2, stride=2),
                                          nn.ReLU(True))
        self.fc_loc = nn.Sequential(nn.Linear(4 * 3 * 3, 8), nn.ReLU(True), nn.Linear(8, 6))
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))
        self.head = nn.Linear(64, 3)

    def stn(self, x):
        theta = self.fc_loc(self.localization(x).view(-1, 4 * 3 * 3)).view(-1, 2, 3)
        grid = F.affine_grid(theta, x.size(), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward(self, x):
        return F.log_softmax(self.head(self.stn(x).view(-1, 64)), dim=1)


def stn_train(model, images, labels, steps=3):
    optimizer = optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        warped = model.stn(x)
    return losses, warped.numpy()


# --- super_resolution: convs + PixelShuffle, MSE, PSNR -----------------------------------
class SuperResolutionNet(nn.Module):
    def __init__(self, upscale_factor=2):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 8, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(8, 4, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(4, upscale_factor ** 2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)
        nn.init.orthogonal_(self.conv1.weight, nn.init.calculate_gain("relu"))

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.pixel_shuffle(self.conv3(x))


def super_resolution_train(model, low, high, steps=3):
    criterion = nn.MSELoss()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(low), torch.from_numpy(high)
    psnrs = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        psnrs.append(10 * math.log10(1 / loss.item()))
    return psnrs


# --- siamese network: shared tower, pairwise_distance, cosine_similarity, triplet loss ---
class SiameseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.tower = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))

    def forward(self, a, b, c):
        return self.tower(a), self.tower(b), self.tower(c)


def siamese_train(model, anchor, positive, negative, steps=3):
    criterion = nn.TripletMarginLoss(margin=1.0, p=2)
    optimizer = optim.RMSprop(model.parameters(), lr=0.01)
    a, p, n = (torch.from_numpy(v) for v in (anchor, positive, negative))
    log = []
    for _ in range(steps):
        optimizer.zero_grad()
        ea, ep, en = model(a, p, n)
        loss = criterion(ea, ep, en)
        loss = loss + F.cosine_embedding_loss(ea, ep, torch.ones(a.size(0)))
        loss.backward()
        optimizer.step()
        log.append(loss.item())
    with torch.no_grad():
        ea, ep, en = model(a, p, n)
        d_pos = F.pairwise_distance(ea, ep)
        sim = F.cosine_similarity(ea, en, dim=1)
    return log, d_pos.numpy(), sim.numpy()


# --- time_sequence_prediction: LSTMCell unrolled, future steps ---------------------------
class Sequence(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.hidden = hidden
        self.lstm1 = nn.LSTMCell(1, hidden)
        self.lstm2 = nn.LSTMCell(hidden, hidden)
        self.linear = nn.Linear(hidden, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for i in range(future):
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


def time_sequence_train(seq, data, steps=2, max_iter=4):
    seq.double()
    input = torch.from_numpy(data[:, :-1])
    target = torch.from_numpy(data[:, 1:])
    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=max_iter)
    losses = []
    for _ in range(steps):
        def closure():
            optimizer.zero_grad()
            loss = criterion(seq(input), target)
            loss.backward()
            return loss
        losses.append(optimizer.step(closure).item())
    with torch.no_grad():
        pred = seq(input, future=2)
    return losses, pred.detach().numpy()


# --- reinforce: a policy, Categorical, discounted normalized returns ---------------------
class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.affine1 = nn.Linear(4, 16)
        self.dropout = nn.Dropout(p=0.0)
        self.affine2 = nn.Linear(16, 2)
        self.saved_log_probs = []
        self.rewards = []

    def forward(self, x):
        x = F.relu(self.dropout(self.affine1(x)))
        return F.softmax(self.affine2(x), dim=1)


def reinforce_episode(policy, states, actions, rewards, gamma=0.99):
    """One REINFORCE update; the actions are given (the test checks sampling apart)."""
    optimizer = optim.Adam(policy.parameters(), lr=1e-2)
    eps = np.finfo(np.float32).eps.item()
    for state, action, reward in zip(states, actions, rewards):
        probs = policy(torch.from_numpy(state).float().unsqueeze(0))
        m = Categorical(probs)
        sampled = m.sample()
        assert sampled.shape == (1,) and 0 <= sampled.item() < 2
        policy.saved_log_probs.append(m.log_prob(torch.tensor([action])))
        policy.rewards.append(reward)
    R, returns = 0, []
    for r in policy.rewards[::-1]:
        R = r + gamma * R
        returns.insert(0, R)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + eps)
    policy_loss = [-log_prob * R for log_prob, R in zip(policy.saved_log_probs, returns)]
    optimizer.zero_grad()
    policy_loss = torch.cat(policy_loss).sum()
    policy_loss.backward()
    optimizer.step()
    del policy.rewards[:]
    del policy.saved_log_probs[:]
    entropy = Categorical(probs=policy(torch.from_numpy(states).float())).entropy()
    return policy_loss.item(), entropy.detach().numpy()


# --- reinforcement_q_learning (DQN): replay batch, gather, masked targets, soft update ---
from collections import namedtuple  # noqa: E402

Transition = namedtuple("Transition", ("state", "action", "next_state", "reward"))


class DQN(nn.Module):
    def __init__(self, n_observations=4, n_actions=2):
        super().__init__()
        self.layer1 = nn.Linear(n_observations, 16)
        self.layer2 = nn.Linear(16, 16)
        self.layer3 = nn.Linear(16, n_actions)

    def forward(self, x):
        x = F.relu(self.layer1(x))
        x = F.relu(self.layer2(x))
        return self.layer3(x)


def dqn_optimize(policy_net, target_net, transitions_np, steps=3, gamma=0.99, tau=0.005):
    """The tutorial's optimize_model + soft target update, on given transitions."""
    optimizer = optim.AdamW(policy_net.parameters(), lr=1e-3, amsgrad=True)
    target_net.load_state_dict(policy_net.state_dict())
    log = []
    for _ in range(steps):
        transitions = [Transition(torch.tensor(s, dtype=torch.float32).unsqueeze(0),
                                  torch.tensor([[a]], dtype=torch.long),
                                  None if ns is None else
                                  torch.tensor(ns, dtype=torch.float32).unsqueeze(0),
                                  torch.tensor([r]))
                       for s, a, ns, r in transitions_np]
        batch = Transition(*zip(*transitions))
        non_final_mask = torch.tensor(tuple(map(lambda s: s is not None, batch.next_state)),
                                      dtype=torch.bool)
        non_final_next_states = torch.cat([s for s in batch.next_state if s is not None])
        state_batch = torch.cat(batch.state)
        action_batch = torch.cat(batch.action)
        reward_batch = torch.cat(batch.reward)
        state_action_values = policy_net(state_batch).gather(1, action_batch)
        next_state_values = torch.zeros(len(transitions))
        with torch.no_grad():
            next_state_values[non_final_mask] = target_net(non_final_next_states).max(1).values
        expected = (next_state_values * gamma) + reward_batch
        criterion = nn.SmoothL1Loss()
        loss = criterion(state_action_values, expected.unsqueeze(1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(policy_net.parameters(), 100)
        optimizer.step()
        target_state = target_net.state_dict()
        policy_state = policy_net.state_dict()
        for key in policy_state:
            target_state[key] = policy_state[key] * tau + target_state[key] * (1 - tau)
        target_net.load_state_dict(target_state)
        with torch.no_grad():
            greedy = policy_net(state_batch[:1]).max(1).indices.view(1, 1)
        log.append([loss.item(), greedy.item()])
    eps = 0.05 + (0.9 - 0.05) * math.exp(-1.0 * 3 / 1000)
    return log, target_net.layer3.weight.detach().numpy(), eps


# --- fgsm_tutorial: adversarial examples from the input's gradient -----------------------
def fgsm_attack(image, epsilon, data_grad):
    sign_data_grad = data_grad.sign()
    perturbed_image = image + epsilon * sign_data_grad
    return torch.clamp(perturbed_image, 0, 1)


def denorm(batch, mean=(0.1307,), std=(0.3081,)):
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    std = torch.tensor(std).view(1, -1, 1, 1)
    return batch * std + mean


def fgsm_test(model, images, labels, epsilons=(0.0, 0.1, 0.3)):
    model.eval()
    results = []
    for epsilon in epsilons:
        correct, examples = 0, []
        for image_np, label in zip(images, labels):
            data = torch.from_numpy(image_np).unsqueeze(0)
            target = torch.tensor([label])
            data.requires_grad = True
            output = model(data)
            init_pred = output.max(1, keepdim=True)[1]
            loss = F.nll_loss(output, target)
            model.zero_grad()
            loss.backward()
            data_grad = data.grad.data
            perturbed = fgsm_attack(denorm(data), epsilon, data_grad)
            perturbed = (perturbed - 0.1307) / 0.3081
            final_pred = model(perturbed).max(1, keepdim=True)[1]
            correct += int(final_pred.item() == target.item())
            examples.append((init_pred.item(), final_pred.item(),
                             perturbed.squeeze().detach().numpy().sum()))
        results.append((epsilon, correct / float(len(labels)), examples))
    return results
