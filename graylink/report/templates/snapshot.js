/* graylink snapshot viewer: builds the tree and the lists lazily from flat
   arrays, so a million-file index opens quickly. Names only ever reach the
   page through textContent and href (URI-encoded), never as markup. */
(function () {
  "use strict";
  var FW = 4, DW = 5, VIDEO = 1, LINKED = 2, PAGE = 1000;
  var UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  var F, D, M;
  try {
    F = JSON.parse($("gl-files").textContent);
    D = JSON.parse($("gl-dirs").textContent);
    M = JSON.parse($("gl-meta").textContent);
  } catch (err) {
    $("gl-status").textContent = "The snapshot's data is damaged: " + err.message;
    return;
  }
  // The JSON text is as large as the data itself: let it go.
  $("gl-files").textContent = "";
  $("gl-dirs").textContent = "";

  var nF = F.length / FW, nD = D.length / DW;
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  function dName(i) { return D[i * DW]; }
  function dParent(i) { return D[i * DW + 1]; }
  function dMtime(i) { return D[i * DW + 2]; }
  function dFirst(i) { return D[i * DW + 3]; }
  function dCount(i) { return D[i * DW + 4]; }
  function fName(j) { return F[j * FW]; }
  function fSize(j) { return F[j * FW + 1]; }
  function fMtime(j) { return F[j * FW + 2]; }
  function fFlags(j) { return F[j * FW + 3]; }

  // Children and recursive totals, in two passes: a parent always precedes
  // its children in the folder table.
  var kids = new Array(nD), kidsSorted = new Uint8Array(nD);
  var treeSize = new Float64Array(nD), treeFiles = new Float64Array(nD);
  (function () {
    var i, j, end, p;
    for (i = 0; i < nD; i++) {
      kids[i] = [];
      end = dFirst(i) + dCount(i);
      for (j = dFirst(i); j < end; j++) treeSize[i] += fSize(j);
      treeFiles[i] = dCount(i);
    }
    for (i = 1; i < nD; i++) { p = dParent(i); if (p >= 0) kids[p].push(i); }
    for (i = nD - 1; i > 0; i--) {
      p = dParent(i);
      if (p >= 0) { treeSize[p] += treeSize[i]; treeFiles[p] += treeFiles[i]; }
    }
  })();

  var fileDir = null; // folder of each file, built on the first search
  function folderOfFile(j) {
    if (!fileDir) {
      fileDir = new Int32Array(nF);
      for (var i = 0; i < nD; i++) fileDir.fill(i, dFirst(i), dFirst(i) + dCount(i));
    }
    return fileDir[j];
  }

  function sortedKids(i) {
    if (!kidsSorted[i]) {
      kids[i].sort(function (a, b) { return collator.compare(dName(a), dName(b)); });
      kidsSorted[i] = 1;
    }
    return kids[i];
  }
  function chain(i) {
    var out = [];
    for (; i >= 0; i = dParent(i)) out.push(i);
    return out.reverse();
  }
  function folderPath(i) {
    return "/" + chain(i).slice(1).map(dName).join("/");
  }
  function folderHash(i) {
    return "#/" + chain(i).slice(1).map(function (k) { return encodeURIComponent(dName(k)); }).join("/");
  }
  var rootLabel = M.source || "/";
  function label(i) { return i === 0 ? rootLabel : dName(i); }

  function human(n) {
    if (n < 1024) return n + " B";
    var u = 0;
    while (n >= 1024 && u < UNITS.length - 1) { n /= 1024; u++; }
    return (n < 10 ? n.toFixed(1) : Math.round(n)) + " " + UNITS[u];
  }
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function when(s) {
    if (!s) return "";
    var d = new Date(s * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function count(n) { return Number(n).toLocaleString(); }

  // ------------------------------------------------------------ header

  (function () {
    var totals = $("gl-totals");
    var items = [
      ["folders", "Folders", count(M.folders), M.folders],
      ["files", "Files", count(M.files), M.files],
      ["videos", "Linkable", count(M.videos), M.videos],
      ["linked", "Linked", count(M.linked), M.linked],
      ["size", "Total size", human(M.size), M.size],
      ["generated", "Generated", when(M.generated), M.generated]
    ];
    items.forEach(function (it) {
      var box = el("div");
      box.id = "gl-total-" + it[0];
      box.dataset.value = it[3];
      box.appendChild(el("dt", null, it[1]));
      box.appendChild(el("dd", null, it[2]));
      totals.appendChild(box);
    });
  })();

  // -------------------------------------------------------------- tree

  var tree = $("gl-tree"), treeNodes = new Array(nD);
  function treeItem(i) {
    var li = el("li"), row = el("div", "row");
    var tog = el("span", "tog", kids[i].length ? "▸" : "");
    var a = el("a", null, label(i));
    a.href = folderHash(i);
    a.title = folderPath(i);
    var info = el("span", "info", human(treeSize[i]));
    info.title = count(treeFiles[i]) + " files";
    row.appendChild(tog); row.appendChild(a); row.appendChild(info);
    row.dataset.i = i;
    li.appendChild(row);
    treeNodes[i] = li;
    return li;
  }
  function setOpen(i, open) {
    var li = treeNodes[i];
    if (!li || !kids[i].length) return;
    var ul = li.lastChild.tagName === "UL" ? li.lastChild : null;
    if (open && !ul) {
      ul = el("ul");
      var frag = document.createDocumentFragment();
      sortedKids(i).forEach(function (k) { frag.appendChild(treeItem(k)); });
      ul.appendChild(frag);
      li.appendChild(ul);
    }
    if (ul) ul.hidden = !open;
    li.firstChild.firstChild.textContent = open ? "▾" : "▸";
  }
  function isOpen(i) {
    var li = treeNodes[i];
    return !!li && li.lastChild.tagName === "UL" && !li.lastChild.hidden;
  }
  tree.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t.classList.contains("tog")) {
      var i = +t.parentNode.dataset.i;
      setOpen(i, !isOpen(i));
    }
  });
  var rootList = el("ul");
  rootList.appendChild(treeItem(0));
  tree.appendChild(rootList);
  setOpen(0, true);

  // ------------------------------------------------------------ listing

  var table = $("gl-list"), tbody = table.tBodies[0], status = $("gl-status"), more = $("gl-more");
  var crumbs = $("gl-crumbs"), searchBox = $("gl-search");
  var sortKey = "name", sortDir = 1;
  var view = null; // {dirs: [...], files: [...], shown: n, search: bool}
  var selected = -1, pendingFile = -1;

  function cmpName(a, b) { return collator.compare(a, b); }
  function fileCmp() {
    var key = sortKey, dir = sortDir;
    return function (a, b) {
      var r = 0;
      if (key === "size") r = fSize(a) - fSize(b);
      else if (key === "mtime") r = fMtime(a) - fMtime(b);
      else if (key === "linked") r = fFlags(a) - fFlags(b);
      else if (key === "folder") r = cmpName(folderPath(folderOfFile(a)), folderPath(folderOfFile(b)));
      if (r === 0) r = cmpName(fName(a), fName(b));
      return r * dir;
    };
  }
  function dirCmp() {
    var key = sortKey, dir = sortDir;
    return function (a, b) {
      var r = 0;
      if (key === "size") r = treeSize[a] - treeSize[b];
      else if (key === "mtime") r = dMtime(a) - dMtime(b);
      else if (key === "folder") r = cmpName(folderPath(dParent(a)), folderPath(dParent(b)));
      if (r === 0) r = cmpName(dName(a), dName(b));
      return r * dir;
    };
  }
  function markSortHeader() {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      if (th.dataset.key === sortKey) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
  }

  function folderLink(i, text) {
    var a = el("a", null, text);
    a.href = folderHash(i);
    return a;
  }
  function dirRow(i) {
    var tr = el("tr", "dir");
    var name = el("td", "name");
    name.appendChild(folderLink(i, dName(i)));
    var folder = el("td", "folder col-folder");
    if (view.search) folder.appendChild(folderLink(dParent(i), folderPath(dParent(i))));
    var size = el("td", "size", human(treeSize[i]));
    size.title = count(treeFiles[i]) + " files, " + count(treeSize[i]) + " bytes";
    tr.appendChild(name); tr.appendChild(folder); tr.appendChild(size);
    tr.appendChild(el("td", "date", when(dMtime(i))));
    tr.appendChild(el("td", "link"));
    return tr;
  }
  function fileRow(j) {
    var tr = el("tr", "file"), flags = fFlags(j);
    tr.dataset.f = j;
    var name = el("td", "name");
    if (view.search) {
      var a = folderLink(folderOfFile(j), fName(j));
      a.dataset.f = j;
      name.appendChild(a);
    } else {
      name.textContent = fName(j);
    }
    var folder = el("td", "folder col-folder");
    if (view.search) {
      var d = folderOfFile(j);
      folder.appendChild(folderLink(d, folderPath(d)));
    }
    var size = el("td", "size", human(fSize(j)));
    size.title = count(fSize(j)) + " bytes";
    var state = flags & LINKED ? ["linked", "linked"] : flags & VIDEO ? ["unlinked", "not linked"] : ["other", "not a video"];
    tr.appendChild(name); tr.appendChild(folder); tr.appendChild(size);
    tr.appendChild(el("td", "date", when(fMtime(j))));
    tr.appendChild(el("td", "link " + state[0], state[1]));
    return tr;
  }

  function renderRows(upto) {
    var frag = document.createDocumentFragment();
    var nd = view.dirs.length, total = nd + view.files.length;
    upto = Math.min(total, upto);
    for (var k = view.shown; k < upto; k++) {
      frag.appendChild(k < nd ? dirRow(view.dirs[k]) : fileRow(view.files[k - nd]));
    }
    tbody.appendChild(frag);
    view.shown = upto;
    more.hidden = upto >= total;
    more.textContent = "Show " + count(Math.min(PAGE, total - upto)) + " more (" + count(total - upto) + " left)";
  }
  more.addEventListener("click", function () { renderRows(view.shown + PAGE); });

  function show(newView, text) {
    view = newView;
    view.dirs.sort(dirCmp());
    view.files.sort(fileCmp());
    view.shown = 0;
    table.classList.toggle("search", !!view.search);
    markSortHeader();
    tbody.textContent = "";
    status.textContent = text;
    var upto = PAGE;
    if (pendingFile >= 0) {
      var at = view.files.indexOf(pendingFile);
      if (at >= 0) upto = Math.max(upto, view.dirs.length + at + 1);
    }
    renderRows(upto);
    if (pendingFile >= 0) {
      var row = tbody.querySelector('tr[data-f="' + pendingFile + '"]');
      if (row) { row.classList.add("hit"); row.scrollIntoView({ block: "center" }); }
      pendingFile = -1;
    }
  }

  table.tHead.addEventListener("click", function (ev) {
    var key = ev.target.dataset && ev.target.dataset.key;
    if (!key || !view) return;
    if (key === sortKey) sortDir = -sortDir; else { sortKey = key; sortDir = 1; }
    show(view, status.textContent);
  });

  function setCrumbs(i) {
    crumbs.textContent = "";
    chain(i).forEach(function (k, n) {
      if (n) crumbs.appendChild(el("span", "sep", "/"));
      crumbs.appendChild(folderLink(k, label(k)));
    });
  }

  function selectFolder(i) {
    var up = chain(i);
    for (var n = 0; n < up.length - 1; n++) setOpen(up[n], true);
    if (selected >= 0 && treeNodes[selected]) treeNodes[selected].firstChild.classList.remove("sel");
    selected = i;
    var row = treeNodes[i].firstChild;
    row.classList.add("sel");
    row.scrollIntoView({ block: "nearest" });
    setCrumbs(i);
    if (sortKey === "folder") { sortKey = "name"; sortDir = 1; } // no such column here
    var files = [];
    for (var j = dFirst(i), end = dFirst(i) + dCount(i); j < end; j++) files.push(j);
    var text = count(kids[i].length) + " folders, " + count(dCount(i)) + " files here; " +
      count(treeFiles[i]) + " files, " + human(treeSize[i]) + " in all";
    show({ dirs: kids[i].slice(), files: files, search: false }, text);
  }

  function folderFromHash() {
    var h = location.hash;
    if (h.indexOf("#/") !== 0) return 0;
    var cur = 0, parts = h.slice(2).split("/");
    for (var p = 0; p < parts.length; p++) {
      if (!parts[p]) continue;
      var name;
      try { name = decodeURIComponent(parts[p]); } catch (err) { return cur; }
      var next = -1, ks = kids[cur];
      for (var k = 0; k < ks.length; k++) if (dName(ks[k]) === name) { next = ks[k]; break; }
      if (next < 0) return cur; // a folder gone since: show the deepest one that exists
      cur = next;
    }
    return cur;
  }
  function route() { selectFolder(folderFromHash()); }
  window.addEventListener("hashchange", route);

  // ------------------------------------------------------------ search

  var lowNames = null;
  function search(query) {
    var q = query.toLowerCase();
    if (!q) { route(); return; }
    if (!lowNames) {
      lowNames = new Array(nF);
      for (var j = 0; j < nF; j++) lowNames[j] = fName(j).toLowerCase();
    }
    var files = [], dirs = [], i;
    for (i = 0; i < nF; i++) if (lowNames[i].indexOf(q) !== -1) files.push(i);
    for (i = 1; i < nD; i++) if (dName(i).toLowerCase().indexOf(q) !== -1) dirs.push(i);
    crumbs.textContent = "";
    crumbs.appendChild(el("span", null, "Search: "));
    crumbs.appendChild(el("strong", null, query));
    show({ dirs: dirs, files: files, search: true },
      count(files.length) + " files and " + count(dirs.length) + " folders match");
  }
  $("gl-search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    search(searchBox.value);
  });
  searchBox.addEventListener("search", function () { if (!searchBox.value) route(); });
  // Links into the current folder would not fire hashchange: route them too,
  // so a search hit in the folder already selected still opens it.
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest('a[href^="#/"]') : null;
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    pendingFile = a.dataset.f !== undefined ? +a.dataset.f : -1;
    var href = a.getAttribute("href");
    if (location.hash === href) route(); else location.hash = href;
  });

  route();
  document.documentElement.dataset.ready = "1";
  window.graylinkReadyAt = performance.now();
})();
