// The example shop's front end: plain fetch calls, so the browser's devtools show each
// request's Server-Timing breakdown (db, app, total) next to its timing.
"use strict";

function timing(response) {
  const header = response.headers.get("server-timing") || "";
  const total = /total;dur=([\d.]+)/.exec(header);
  return total ? `${Number(total[1]).toFixed(1)} ms on the server` : "";
}

// The tuned page loads lagless-msgpack.js first: it then asks for MessagePack (smaller and
// cheaper to encode than JSON) and decodes whichever format the server chose. The naive page
// does not load it and asks for JSON.
const codec = globalThis.laglessMsgpack;

async function getPayload(url, label) {
  const started = performance.now();
  const accept = codec ? codec.ACCEPT : "application/json";
  const response = await fetch(url, { headers: { Accept: accept } });
  const type = (response.headers.get("content-type") || "").split(";")[0].trim();
  const body = codec && (type === "application/msgpack" || type === "application/x-msgpack")
    ? codec.decode(await response.arrayBuffer())
    : await response.json();
  const el = document.getElementById(label);
  if (el) {
    const format = type.endsWith("msgpack") ? "MessagePack" : "JSON";
    el.textContent = `${(performance.now() - started).toFixed(0)} ms · ${format} · ${timing(response)}`;
  }
  return body;
}

function li(text, onClick) {
  const item = document.createElement("li");
  item.textContent = text;
  if (onClick) {
    item.className = "link";
    item.addEventListener("click", onClick);
  }
  return item;
}

async function showBook(id) {
  const book = await getPayload(`/api/books/${id}`, "book-time");
  const article = document.getElementById("book");
  article.replaceChildren();
  const title = document.createElement("h3");
  title.textContent = `${book.title} — ${book.author.name}`;
  const meta = document.createElement("p");
  meta.textContent = `${book.genre} · ${book.price} · ${book.reviews.count} reviews`;
  const about = document.createElement("p");
  about.textContent = book.description;
  article.append(title, meta, about);
}

let cursor = 0;

async function loadBooks() {
  const data = await getPayload(`/api/books?limit=20&after=${cursor}`, "books-time");
  // The naive API returns every book as a bare list; the tuned one pages.
  const items = Array.isArray(data) ? data.slice(0, 20) : data.items;
  const list = document.getElementById("books");
  for (const book of items) {
    list.append(li(`${book.title} (${book.genre})`, () => showBook(book.id)));
  }
  const more = document.getElementById("more");
  cursor = Array.isArray(data) ? 0 : data.next;
  more.hidden = !cursor;
}

async function main() {
  document.getElementById("more").addEventListener("click", loadBooks);
  const stats = await getPayload("/api/stats", null);
  document.getElementById("stats").textContent =
    `${stats.books} books by ${stats.authors} authors, ${stats.reviews} reviews ` +
    `(average ${stats.average_rating}★)`;
  await loadBooks();
  const reviews = await getPayload("/api/reviews/recent", "reviews-time");
  const list = document.getElementById("reviews");
  for (const review of reviews.slice(0, 10)) {
    list.append(li(`${"★".repeat(review.rating)} ${review.book.title}: ${review.body}`,
      () => showBook(review.book.id)));
  }
}

main().catch((error) => {
  document.getElementById("stats").textContent = `error: ${error}`;
});
