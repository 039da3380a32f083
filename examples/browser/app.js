// The roomwire browser example: presence list, message list, a send box with a file attachment.
// Where to connect and with which token come from the page's URL fragment (#url=...&token=...),
// which browsers never send to any server; the token goes only into the first frame.
import { connect } from "./roomwire.js";

const params = new URLSearchParams(location.hash.slice(1));
const $ = (id) => document.getElementById(id);
const status = (state, text) => {
  $("status").dataset.state = state;
  $("status").textContent = text;
};

function nameOf(room, id) {
  if (room.localParticipant && id === room.localParticipant.id) return "me";
  const participant = room.messaging.getParticipant(id);
  return participant ? participant.name : id;
}

function showParticipants(room) {
  const list = $("participants");
  const to = $("to");
  const chosen = to.value;
  list.replaceChildren();
  to.replaceChildren(new Option("everyone (broadcast)", ""));
  for (const p of room.messaging.remoteParticipants) {
    const item = document.createElement("li");
    item.dataset.id = p.id;
    item.textContent = p.name;
    const role = document.createElement("span");
    role.className = "role";
    role.textContent = p.role;
    item.append(role);
    list.append(item);
    to.append(new Option(p.name, p.id));
  }
  to.value = [...to.options].some((o) => o.value === chosen) ? chosen : "";
}

function showMessage(room, m) {
  const item = document.createElement("li");
  item.dataset.id = m.id;
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = nameOf(room, m.fromParticipantId);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = typeof m.message.text === "string" ? m.message.text : JSON.stringify(m.message);
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = m.broadcast ? "broadcast" : "direct";
  item.append(from, text, kind);
  if (m.attachment) {
    const link = document.createElement("a");
    link.className = "attachment";
    const name = typeof m.message.file === "string" ? m.message.file : "attachment";
    link.href = URL.createObjectURL(new Blob([m.attachment]));
    link.download = name;
    link.textContent = `${name} (${m.attachment.byteLength} bytes)`;
    item.append(link);
  }
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
}

async function main() {
  const url = params.get("url");
  const token = params.get("token");
  if (!url || !token) {
    status("error", "open this page with #url=ws://...&token=...");
    return;
  }
  let room;
  try {
    room = await connect(url, { token });
  } catch (error) {
    status("error", `cannot connect: ${error.codeName ?? ""} ${error.message}`);
    return;
  }
  window.room = room; // for the browser test and for poking at it from the console
  status("connected", "connected");
  $("me").textContent = room.localParticipant ? `as ${room.localParticipant.name}` : "";
  for (const event of ["participant_added", "participant_removed", "participant_updated"]) {
    room.messaging.on(event, () => showParticipants(room));
  }
  room.messaging.on("message", (m) => showMessage(room, m));
  await room.messaging.enable();
  showParticipants(room);

  $("send").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("error").textContent = "";
    const text = $("text").value;
    const file = $("file").files[0];
    const message = file ? { text, file: file.name } : { text };
    const attachment = file ? new Uint8Array(await file.arrayBuffer()) : undefined;
    const to = $("to").value;
    try {
      if (to) {
        await room.messaging.sendMessage({ to, type: "chat", message, attachment });
      } else {
        await room.messaging.broadcastMessage({ type: "chat", message, attachment });
      }
      showMessage(room, {
        id: "", fromParticipantId: room.localParticipant.id, message, attachment,
        broadcast: !to,
      });
      $("text").value = "";
      $("file").value = "";
    } catch (error) {
      $("error").textContent = `${error.codeName ?? "error"}: ${error.message}`;
    }
  });
}

main();
